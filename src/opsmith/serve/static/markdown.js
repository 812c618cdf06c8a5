// Markdown for the chat page: runbook text and answers rendered as runbooks are written.
//
// markdown-it renders (raw HTML on, because runbooks use <details>), then DOMPurify sanitises
// the result into a DocumentFragment, so no markup from a runbook or a model reaches the page
// unchecked. Both libraries are vendored under ./vendor/ (see its README): no CDN, and nothing
// here needs more than the page's CSP (script-src 'self', no eval).

import markdownit from "./vendor/markdown-it.esm.min.js";
import DOMPurify from "./vendor/purify.es.js";
import { announce, h } from "./common.js";

const md = markdownit({ html: true, linkify: true });

// Images are shown as their alt text: the server does not serve a runbook's image files, and
// the CSP blocks other origins, so an <img> could only ever be a broken picture (or a beacon).
md.renderer.rules.image = (tokens, idx) =>
  `<span class="image-alt">[image: ${md.utils.escapeHtml(tokens[idx].content || "untitled")}]</span>`;

// Options travel in `env`, the one object markdown-it hands to every rule.
md.core.ruler.push("opsmith_blocks", (state) => {
  const { headingOffset = 0, firstLine = null } = state.env;
  for (const token of state.tokens) {
    if (headingOffset && (token.type === "heading_open" || token.type === "heading_close")) {
      // The page owns the top heading levels; a runbook's "# Title" nests below them.
      token.tag = `h${Math.min(6, Number(token.tag.slice(1)) + headingOffset)}`;
    }
    // The source lines of each block (html_block renders verbatim, so it cannot carry them).
    if (firstLine != null && token.map && token.block && token.nesting >= 0 && token.type !== "html_block") {
      token.attrSet("data-source-line", String(firstLine + token.map[0]));
      token.attrSet("data-source-end", String(firstLine + token.map[1] - 1));
    }
  }
});

// Links: web and mail addresses, and relative ones; every other scheme (javascript:, data:,
// vbscript:, file:) loses its href. This is DOMPurify's default pattern with only http(s) and
// mailto kept.
const SAFE_URI = /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i;
const LANGUAGE_CLASS = /^language-[\w+#.-]+$/;

// Media (see images above), form controls and styles: nothing a runbook needs, and each a way to
// fake the page's own controls or to call out.
const MEDIA = ["img", "picture", "video", "audio", "source", "track"];
const FORMS = ["form", "input", "button", "textarea", "select", "option", "label", "fieldset"];

const SANITIZE = {
  USE_PROFILES: { html: true }, // no SVG or MathML
  ALLOWED_URI_REGEXP: SAFE_URI,
  FORBID_TAGS: ["style", ...MEDIA, ...FORMS],
  // Ids and names could shadow the page's own elements; tabindex and accesskey would hijack the keyboard.
  FORBID_ATTR: ["style", "id", "name", "tabindex", "accesskey"],
  ALLOW_DATA_ATTR: false,
  ADD_ATTR: ["data-source-line", "data-source-end"],
  RETURN_DOM_FRAGMENT: true,
};

DOMPurify.addHook("uponSanitizeAttribute", (node, data) => {
  // Our own classes drive the page (citation links, copy buttons): a runbook keeps only a
  // code block's language.
  if (data.attrName === "class") data.keepAttr = LANGUAGE_CLASS.test(data.attrValue);
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  const href = node.tagName === "A" ? node.getAttribute("href") : null;
  if (href && !href.startsWith("#")) {
    // The conversation lives only in this page: a link out opens beside it, with no handle back.
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/**
 * Render Markdown to a sanitised DocumentFragment.
 *
 * Options: headingOffset moves every heading down that many levels; firstLine (the source line of
 * the text's first line) marks each block with data-source-line/-end; references maps reference
 * link labels defined elsewhere in the same document (see referencesOf).
 */
export function renderMarkdown(text, { headingOffset = 0, firstLine = null, references = undefined } = {}) {
  const env = { headingOffset, firstLine, references: references ? { ...references } : undefined };
  const fragment = DOMPurify.sanitize(md.render(text, env), SANITIZE);
  for (const code of fragment.querySelectorAll("pre > code")) {
    const pre = code.parentElement;
    const block = wrap(pre, "code-block", code);
    block.prepend(copyButton(() => code.textContent.replace(/\n$/, ""), "Copy code"));
  }
  for (const table of fragment.querySelectorAll("table")) wrap(table, "table-block", table);
  return fragment;
}

/**
 * Put `element` in a <div class=name> that takes over the source lines found on `from` (a fence
 * renders them on its <code>): the wrapper holds the copy button, or scrolls a wide table.
 */
function wrap(element, className, from) {
  const block = h("div", { className });
  for (const name of ["data-source-line", "data-source-end"]) {
    if (from.hasAttribute(name)) block.setAttribute(name, from.getAttribute(name));
    from.removeAttribute(name);
  }
  element.replaceWith(block);
  block.append(element);
  return block;
}

/** The reference link definitions of a whole document ("[ref]: url"), for rendering it in parts. */
export function referencesOf(text) {
  const env = {};
  md.parse(text, env);
  return env.references || {};
}

/**
 * Turn "[1]" (and "[1, 2]", "[2][3]") in the text of `root` into the links `link(n)` returns;
 * markers that link() knows nothing about stay text. Code, preformatted text and existing links
 * are left alone, so "[1]" in a shell command stays what it is.
 */
export function linkCitations(root, link) {
  const marker = /\[(\d+(?:\s*,\s*\d+)*)\]/g;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) =>
      node.parentElement?.closest("code, pre, a, kbd, samp") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
  });
  const texts = [];
  while (walker.nextNode()) texts.push(walker.currentNode);
  for (const node of texts) {
    const text = node.textContent;
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(marker)) {
      const links = match[1].split(",").map((n) => link(Number(n.trim())));
      if (links.some((a) => !a)) continue;
      parts.push(text.slice(last, match.index), ...links);
      last = match.index + match[0].length;
    }
    if (!parts.length) continue;
    parts.push(text.slice(last));
    node.replaceWith(...parts.filter((part) => part !== ""));
  }
}

/**
 * A "Copy" button that puts `text()` on the clipboard and says "Copied". Where the Clipboard
 * API is missing (plain http to a non-local address is not a secure context), it selects the
 * text and copies it the old way, or leaves it selected for Ctrl+C.
 */
export function copyButton(text, label) {
  const button = h("button", { type: "button", className: "copy-button", "aria-label": label }, "Copy");
  let reset = 0;
  button.addEventListener("click", async () => {
    const value = text();
    let copied = false;
    try {
      if (navigator.clipboard?.writeText) {
        await navigator.clipboard.writeText(value);
        copied = true;
      }
    } catch {
      // Refused (permissions, an unfocused page): fall through to selecting the text.
    }
    if (!copied) copied = selectAndCopy(button);
    if (!copied) {
      announce("Selected: press Ctrl+C to copy.");
      return;
    }
    button.textContent = "Copied";
    button.setAttribute("aria-label", "Copied");
    announce("Copied to the clipboard.");
    clearTimeout(reset);
    reset = setTimeout(() => {
      button.textContent = "Copy";
      button.setAttribute("aria-label", label);
    }, 2000);
  });
  return button;
}

function selectAndCopy(button) {
  const code = button.closest(".code-block, li")?.querySelector("code");
  if (!code) return false;
  getSelection().selectAllChildren(code);
  try {
    return document.execCommand("copy");
  } catch {
    return false;
  }
}
