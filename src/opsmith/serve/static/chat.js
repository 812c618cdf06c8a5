// The chat page: ask the runbooks, stream the answer, open cited sources in a side panel.
//
// Flow: POST /v1/ask with stream:true and read the text/event-stream body (EventSource cannot
// POST). "token" events are shown as plain text while they arrive; the one "answer" event
// replaces them with the final answer, whose [n] markers link to its citations. A citation is a
// real link to "#source=<collection>/<source>&lines=a-b", so the hash drives the source panel and
// the link can be shared.

import {
  ApiError,
  announce,
  apiFetch,
  apiJSON,
  auth,
  h,
  lineRange,
  loadInfo,
  plural,
  readEventStream,
} from "./common.js";

const form = document.getElementById("ask-form");
const question = document.getElementById("question");
const collectionSelect = document.getElementById("collection");
const askButton = document.getElementById("ask");
const conversation = document.getElementById("conversation");
const layout = document.getElementById("layout");
const panel = document.getElementById("source-panel");
const panelTitle = document.getElementById("source-title");
const panelMeta = document.getElementById("source-meta");
const panelBody = document.getElementById("source-body");

let info = null;
let busy = false;

// ---------------------------------------------------------------------------------------------
// Collections

async function loadCollections() {
  const chosen = collectionSelect.value || info?.collection || "";
  let collections = [];
  try {
    const data = await apiJSON("/v1/collections");
    collections = data.collections;
  } catch (error) {
    // Without the list (no token yet, say) the default collection still works for asking.
    if (!(error instanceof ApiError) || error.status !== 401) announce(`Could not list collections: ${error.message}`);
  }
  const names = collections.map((c) => c.name);
  if (chosen && !names.includes(chosen)) {
    collections.unshift({ name: chosen, points: null });
  }
  collectionSelect.replaceChildren(
    ...collections.map((c) =>
      h(
        "option",
        { value: c.name, selected: c.name === chosen },
        c.points == null ? c.name : `${c.name} (${plural(c.points, "chunk")})`,
      ),
    ),
  );
  if (!collections.length) announce("No collections yet: run `opsmith ingest DIR` to index runbooks.");
}

// ---------------------------------------------------------------------------------------------
// Asking

function onQuestionKeydown(event) {
  // Enter asks, Shift+Enter is a newline; leave Enter alone while an IME is composing text.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
}

async function onSubmit(event) {
  event.preventDefault();
  const text = question.value.trim();
  if (!text) return;
  if (busy) {
    announce("Still answering the last question; ask again when it is done.");
    return;
  }
  question.value = "";
  await ask(text, collectionSelect.value || undefined);
}

async function ask(text, collection) {
  busy = true;
  askButton.disabled = true;
  document.getElementById("empty")?.remove();

  const answer = h("div", { className: "answer pending" }, h("p", {}, "Searching the runbooks…"));
  const entry = h(
    "article",
    { className: "exchange", "aria-busy": true },
    h("h2", { className: "question" }, text),
    answer,
  );
  conversation.append(entry);
  scrollToEnd(true);
  announce("Searching the runbooks…");

  let streamed = "";
  let finished = false;
  try {
    const response = await apiFetch("/v1/ask", {
      method: "POST",
      headers: { Accept: "text/event-stream" },
      body: JSON.stringify({ question: text, collection, stream: true }),
    });
    if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
      // A server (or proxy) that answered with plain JSON: same result, just not streamed.
      showAnswer(answer, await response.json(), collection);
      finished = true;
    } else {
      await readEventStream(response, ({ event, data }) => {
        if (event === "token") {
          if (!streamed) announce("Writing the answer…");
          streamed += JSON.parse(data).text;
          showStreaming(answer, streamed);
        } else if (event === "answer") {
          showAnswer(answer, JSON.parse(data), collection);
          finished = true;
        } else if (event === "error") {
          const problem = JSON.parse(data);
          showError(answer, new ApiError(problem.status || 500, problem));
          finished = true;
        }
      });
    }
    if (!finished) throw new Error("The answer stream ended before the answer arrived — ask again.");
  } catch (error) {
    showError(answer, error);
  } finally {
    entry.removeAttribute("aria-busy");
    busy = false;
    askButton.disabled = false;
    scrollToEnd();
  }
}

/** Keep the newest answer in view, unless the reader has scrolled up to read something else. */
function scrollToEnd(force = false) {
  const nearEnd = conversation.scrollHeight - conversation.scrollTop - conversation.clientHeight < 120;
  if (force || nearEnd) conversation.scrollTop = conversation.scrollHeight;
}

function showStreaming(answer, text) {
  answer.className = "answer streaming";
  answer.replaceChildren(h("p", { className: "stream-text" }, text));
  scrollToEnd();
}

function showAnswer(answer, result, requested) {
  const collection = result.collection || requested || info?.collection || "";
  if (result.refused && result.grounded === false) {
    // The model answered without citing any excerpt; any text streamed so far is replaced.
    answer.className = "answer refused";
    answer.replaceChildren(h("h3", {}, "Answer not grounded in the runbooks"), h("p", {}, result.answer));
    announce("Refused: the answer cited no runbook.");
    return;
  }
  if (result.refused) {
    answer.className = "answer refused";
    answer.replaceChildren(
      h("h3", {}, "Not in the runbooks"),
      h("p", {}, result.answer),
      h(
        "p",
        { className: "hint" },
        "Try naming the alert, service or error message. If the runbook exists but is not indexed, ingest it: ",
        h("code", {}, `opsmith ingest DIR --collection ${collection}`),
      ),
    );
    announce("Not in the runbooks.");
    return;
  }

  const byNumber = new Map(result.citations.map((c) => [c.number, c]));
  const children = [h("div", { className: "answer-body" }, renderText(result.answer, byNumber, collection))];
  if (result.error) {
    const notice = `The LLM call failed (${result.error}), so these are runbook passages instead.`;
    children.push(h("p", { className: "notice" }, notice));
  }
  if (result.grounded === false) {
    const warning = "Not grounded: this answer cites none of the runbook excerpts. Check it before acting on it.";
    children.push(h("p", { className: "notice ungrounded", role: "note" }, warning));
  }
  if (result.citations.length) {
    children.push(
      h("h3", { className: "citations-title" }, "Sources"),
      h(
        "ol",
        { className: "citations" },
        result.citations.map((c) =>
          h(
            "li",
            { value: c.number },
            h("a", { href: sourceHash(collection, c.source, c.start_line, c.end_line) }, c.source),
            h("span", { className: "citation-heading" }, c.heading),
            h("span", { className: "citation-lines" }, `lines ${lineRange(c.start_line, c.end_line)}`),
          ),
        ),
      ),
    );
  }
  const mode = result.provider === "none" ? "extractive" : [result.provider, result.model].filter(Boolean).join(" · ");
  const total = result.timings_ms?.total;
  children.push(h("p", { className: "answer-meta" }, total == null ? mode : `${mode} · ${Math.round(total)} ms`));

  answer.className = "answer";
  answer.replaceChildren(...children);
  announce(
    result.grounded === false
      ? "Answer ready, not grounded: it cites no runbook."
      : `Answer ready, ${plural(result.citations.length, "citation")}.`,
  );
}

function showError(answer, error) {
  answer.className = "answer error";
  const detail = error instanceof ApiError ? error.detail || error.title : error.message;
  const parts = [h("h3", {}, "Could not answer"), h("p", { className: "error-detail" }, detail)];
  if (error instanceof ApiError) {
    const where = [`HTTP ${error.status} ${error.title}`];
    if (error.requestId) where.push(`request ${error.requestId}`);
    parts.push(h("p", { className: "answer-meta" }, where.join(" · ")));
  }
  answer.replaceChildren(...parts);
  announce(`Error: ${detail}`);
}

// ---------------------------------------------------------------------------------------------
// The answer text: "markdown-ish" plain text, rendered with a small safe subset (code fences,
// lists, headings, `code`, **bold**) and [n] citation markers turned into links.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+.-]*)/;
const HEADING = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/;
const LIST_ITEM = /^\s*(?:[-*+]|\d+[.)])\s+/;
const INLINE = /(`+)(.+?)\1|\*\*(.+?)\*\*|\[(\d+(?:\s*,\s*\d+)*)\]/g;

function renderText(text, citations, collection) {
  const lines = text.split("\n");
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const fence = FENCE.exec(lines[i]);
    if (fence) {
      const body = [];
      for (i += 1; i < lines.length && !lines[i].trimStart().startsWith(fence[1]); i += 1) body.push(lines[i]);
      i += 1; // the closing fence (or the end of an unclosed block)
      blocks.push(h("pre", {}, h("code", { "data-lang": fence[2] || undefined }, body.join("\n"))));
      continue;
    }
    if (!lines[i].trim()) {
      i += 1;
      continue;
    }
    const paragraph = [];
    while (i < lines.length && lines[i].trim() && !FENCE.test(lines[i])) paragraph.push(lines[i++]);
    blocks.push(renderParagraph(paragraph, citations, collection));
  }
  return blocks;
}

function renderParagraph(lines, citations, collection) {
  const inline = (text) => renderInline(text, citations, collection);
  const heading = lines.length === 1 && HEADING.exec(lines[0]);
  if (heading) return h("p", { className: "answer-heading" }, inline(heading[1]));
  if (lines.every((line) => LIST_ITEM.test(line))) {
    const ordered = /^\s*\d/.test(lines[0]);
    return h(ordered ? "ol" : "ul", {}, lines.map((line) => h("li", {}, inline(line.replace(LIST_ITEM, "")))));
  }
  if (lines.every((line) => line.trimStart().startsWith("|"))) {
    // A markdown table: keep its columns aligned rather than reflowing it.
    return h("pre", { className: "table-text" }, lines.join("\n"));
  }
  // CSS keeps the line breaks (white-space: pre-line).
  return h("p", {}, inline(lines.join("\n")));
}

function renderInline(text, citations, collection) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    out.push(text.slice(last, match.index));
    last = match.index + match[0].length;
    if (match[2] !== undefined) out.push(h("code", {}, match[2]));
    else if (match[3] !== undefined) out.push(h("strong", {}, match[3]));
    else out.push(...citationMarkers(match[4], citations, collection));
  }
  out.push(text.slice(last));
  return out.filter(Boolean);
}

/** "[1]" or "[1, 2]" → one link per number that is a known citation; anything else stays text. */
function citationMarkers(group, citations, collection) {
  const numbers = group.split(",").map((n) => Number(n.trim()));
  if (!numbers.every((n) => citations.has(n))) return [`[${group}]`];
  return numbers.map((n) => {
    const c = citations.get(n);
    return h(
      "a",
      {
        className: "cite",
        href: sourceHash(collection, c.source, c.start_line, c.end_line),
        title: `${c.source} — ${c.heading}`,
        "aria-label": `Citation ${n}: ${c.source}, lines ${lineRange(c.start_line, c.end_line)}`,
      },
      `[${n}]`,
    );
  });
}

// ---------------------------------------------------------------------------------------------
// The source panel, driven by the URL hash: #source=<collection>/<source>&lines=<a>-<b>

const sourceCache = new Map();
let opener = null; // where focus returns when the panel closes
let openRequest = 0; // ignore a slow response once a newer citation has been opened

function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}

function sourceHash(collection, source, start, end) {
  return `#source=${encodePath(`${collection}/${source}`)}&lines=${start}-${end}`;
}

function parseHash(hash) {
  const params = {};
  for (const part of hash.replace(/^#/, "").split("&")) {
    const eq = part.indexOf("=");
    if (eq > 0) params[part.slice(0, eq)] = part.slice(eq + 1);
  }
  if (!params.source) return null;
  let collection, rest;
  try {
    [collection, ...rest] = params.source.split("/").map(decodeURIComponent);
  } catch {
    return null; // a mangled link (bad %-escape): nothing to open
  }
  if (!collection || !rest.length) return null;
  const lines = /^(\d+)(?:-(\d+))?$/.exec(params.lines || "");
  const start = lines ? Number(lines[1]) : null;
  return { collection, source: rest.join("/"), start, end: lines ? Number(lines[2] || lines[1]) : start };
}

async function openFromHash() {
  const target = parseHash(location.hash);
  if (!target) {
    if (!panel.hidden) closeSource({ restoreFocus: false });
    return;
  }
  const focused = document.activeElement;
  if (!opener && focused && focused !== document.body && !panel.contains(focused)) opener = focused;
  const request = ++openRequest;
  showPanel();
  panelTitle.textContent = target.source;
  panelMeta.textContent = "Loading…";
  panelBody.replaceChildren();

  const key = `${target.collection}/${target.source}`;
  let data = sourceCache.get(key);
  try {
    if (!data) {
      const collection = encodeURIComponent(target.collection);
      data = await apiJSON(`/v1/collections/${collection}/sources/${encodePath(target.source)}`);
      sourceCache.set(key, data);
    }
  } catch (error) {
    if (request !== openRequest) return;
    panelMeta.textContent = "";
    panelBody.replaceChildren(
      h("div", { className: "answer error" }, h("h3", {}, "Could not open the source"), h("p", {}, error.message)),
    );
    panelTitle.focus();
    return;
  }
  if (request !== openRequest) return;
  renderSource(data, target);
}

function renderSource(data, { start, end }) {
  panelTitle.textContent = data.title || data.source;
  panelMeta.replaceChildren(
    h("span", {}, `${data.collection} / ${data.source}`),
    start == null ? null : h("span", { className: "cited-range" }, `cited lines ${lineRange(start, end)}`),
  );
  const cited = citedSections(data.sections, start, end);
  const items = data.sections.map((section) => renderSection(section, cited.has(section)));
  panelBody.replaceChildren(h("ol", { className: "sections", "aria-label": "Sections" }, items));

  const firstCited = items.find((item) => item.classList.contains("cited"));
  if (firstCited) firstCited.tabIndex = -1;
  const focusTarget = firstCited || panelTitle;
  focusTarget.focus({ preventScroll: true });
  focusTarget.scrollIntoView({ block: "start" });
  const range = firstCited ? `; lines ${lineRange(start, end)} highlighted` : "";
  announce(`Opened ${data.source}${range}.`);
}

/**
 * The sections a citation covers. A citation spans whole chunks, from the first one's
 * start_line, so those are the sections starting inside its range; the section before may
 * overlap the range by a few lines (chunk overlap) without being cited. Sections that merely
 * overlap are the fallback, for a link whose range does not start on a section.
 */
function citedSections(sections, start, end) {
  if (start == null) return new Set();
  const starting = sections.filter((s) => s.start_line >= start && s.start_line <= end);
  return new Set(starting.length ? starting : sections.filter((s) => s.start_line <= end && s.end_line >= start));
}

function renderSection(section, cited) {
  const lines = section.text.split("\n");
  // <mark> gives the cited text its meaning to assistive technology, not only a colour.
  const text = (value) => (cited ? h("mark", {}, value) : value);
  // Number each line when the text maps one to one onto its line range (true of most
  // Markdown; formats converted at ingest, like HTML or PDF, show the range only).
  const numbered = lines.length === section.end_line - section.start_line + 1;
  return h(
    "li",
    { className: cited ? "section cited" : "section", "data-start": section.start_line, "data-end": section.end_line },
    h(
      "p",
      { className: "section-heading" },
      cited ? h("span", { className: "badge" }, "Cited") : null,
      h("span", { className: "section-title" }, section.heading),
      h("span", { className: "section-lines" }, `lines ${lineRange(section.start_line, section.end_line)}`),
    ),
    numbered
      ? h(
          "ol",
          { className: "source-lines", start: section.start_line },
          lines.map((line) => h("li", {}, h("code", {}, text(line || "\u00a0")))),
        )
      : h("pre", { className: "source-text" }, text(section.text)),
  );
}

function showPanel() {
  panel.hidden = false;
  layout.classList.add("with-source");
}

function closeSource({ restoreFocus = true } = {}) {
  panel.hidden = true;
  layout.classList.remove("with-source");
  openRequest += 1;
  // Drop the hash without adding a history entry (replaceState fires no hashchange).
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  if (restoreFocus) (opener?.isConnected ? opener : question).focus();
  opener = null;
}

// ---------------------------------------------------------------------------------------------

async function init() {
  auth.init(() => loadCollections());
  form.addEventListener("submit", onSubmit);
  question.addEventListener("keydown", onQuestionKeydown);
  window.addEventListener("hashchange", openFromHash);
  document.getElementById("close-source").addEventListener("click", () => closeSource());
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) {
      event.preventDefault();
      closeSource();
    }
  });
  // Remember which citation was clicked even when the hash does not change (same link twice).
  conversation.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='#source=']");
    if (!link) return;
    opener = link;
    if (link.getAttribute("href") === location.hash) {
      event.preventDefault();
      openFromHash();
    }
  });

  try {
    info = await loadInfo();
  } catch (error) {
    announce(`Could not reach the opsmith API: ${error.message}`);
  }
  await loadCollections();
  if (location.hash) openFromHash();
}

init();
