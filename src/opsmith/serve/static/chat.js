// The chat page: ask the runbooks, stream the answer, open cited sources in a side panel.
//
// Flow: POST /v1/ask with stream:true and read the text/event-stream body (EventSource cannot
// POST). "token" events are shown as plain text while they arrive; the one "answer" event
// replaces them with the final answer, rendered as Markdown (markdown.js), whose [n] markers link
// to its citations. A citation is a real link to "#source=<collection>/<source>&lines=a-b", so the
// hash drives the source panel and the link can be shared; the answer's commands link the same way.

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
import { copyButton, linkCitations, referencesOf, renderMarkdown } from "./markdown.js";

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
  // Both lists are newer than the rest of the answer: a server without them sends neither.
  const commands = Array.isArray(result.commands) ? result.commands.filter((c) => typeof c?.text === "string") : [];
  const notCovered = Array.isArray(result.not_covered) ? result.not_covered.map(String) : [];
  const children = [];
  if (notCovered.length) {
    const notice = `The runbooks do not mention: ${notCovered.join(", ")}`;
    children.push(h("p", { className: "notice not-covered", role: "note" }, notice));
  }
  children.push(renderAnswer(result.answer, byNumber, collection, commands.length > 0));
  if (commands.length) children.push(renderCommands(commands, collection));
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
  const ready =
    result.grounded === false
      ? "Answer ready, not grounded: it cites no runbook."
      : `Answer ready, ${plural(result.citations.length, "citation")}.`;
  announce(notCovered.length ? `${ready} The runbooks do not mention: ${notCovered.join(", ")}.` : ready);
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
// The answer text, rendered as Markdown with its [n] citation markers turned into links.

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const FENCE_END = /^ {0,3}(`{3,}|~{3,})\s*$/;
// "[2] db/Postgres.md — Postgres > Diagnosis (lines 10-42)": an extractive answer's quote header.
const QUOTE_HEADER = /^\[\d+\] \S.* \(lines \d+-\d+\)$/;
// The extractive answer's closing "Commands:" list, which the Commands section shows instead.
const COMMANDS_LINE = "Commands:";

function renderAnswer(text, citations, collection, commandsShown) {
  const body = h("div", { className: "answer-body markdown" });
  body.append(renderMarkdown(answerMarkdown(text, commandsShown), { headingOffset: 3 }));
  for (const p of body.querySelectorAll(":scope > p")) {
    if (QUOTE_HEADER.test(p.textContent)) p.classList.add("quote-source");
  }
  linkCitations(body, (n) => citationLink(n, citations.get(n), collection));
  return body;
}

/**
 * The answer text made ready for Markdown: an extractive answer puts each quote's header line
 * right above the quoted text, which Markdown would run into the quote's first paragraph; and
 * its closing "Commands:" list is left out when the Commands section below shows it.
 */
function answerMarkdown(text, commandsShown) {
  const lines = text.split("\n");
  const out = [];
  let fence = null;
  let commandsAt = -1;
  for (const [i, line] of lines.entries()) {
    if (fence) {
      const closed = FENCE_END.exec(line);
      if (closed && closed[1][0] === fence[0] && closed[1].length >= fence.length) fence = null;
    } else if (FENCE.test(line)) {
      fence = FENCE.exec(line)[1];
    } else if (line === COMMANDS_LINE) {
      commandsAt = out.length;
    } else if (QUOTE_HEADER.test(line) && lines[i + 1]?.trim()) {
      out.push(line, "");
      continue;
    }
    out.push(line);
  }
  const listOnly = (rest) => rest.every((line) => !line.trim() || line.startsWith("- "));
  if (commandsShown && commandsAt >= 0 && listOnly(out.slice(commandsAt + 1))) out.length = commandsAt;
  return out.join("\n");
}

function citationLink(n, citation, collection) {
  if (!citation) return null;
  const { source, heading, start_line: start, end_line: end } = citation;
  return h(
    "a",
    {
      className: "cite",
      href: sourceHash(collection, source, start, end),
      title: `${source} — ${heading}`,
      "aria-label": `Citation ${n}: ${source}, lines ${lineRange(start, end)}`,
    },
    `[${n}]`,
  );
}

/** The commands of the quoted sections, each with a copy button and a link to its line. */
function renderCommands(commands, collection) {
  return h(
    "section",
    { className: "commands", "aria-label": "Commands" },
    h("h3", { className: "commands-title" }, "Commands"),
    h(
      "ol",
      { className: "command-list" },
      commands.map((c) => {
        const line = Number.isInteger(c.line) ? c.line : null;
        return h(
          "li",
          {},
          h("code", { className: "command" }, c.text),
          h(
            "span",
            { className: "command-actions" },
            copyButton(() => c.text, "Copy command"),
            c.source
              ? h(
                  "a",
                  { className: "command-source", href: sourceHash(collection, c.source, line, line) },
                  line == null ? c.source : `${c.source}:${line}`,
                )
              : null,
          ),
        );
      }),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// The source panel, driven by the URL hash: #source=<collection>/<source>&lines=<a>-<b>

const sourceCache = new Map();
let opener = null; // where focus returns when the panel closes
let openRequest = 0; // ignore a slow response once a newer citation has been opened

function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}

function sourceHash(collection, source, start = null, end = start) {
  const hash = `#source=${encodePath(`${collection}/${source}`)}`;
  return start == null ? hash : `${hash}&lines=${start}-${end}`;
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
    start == null ? null : h("span", { className: "cited-range" }, `cited ${linesOf(start, end)}`),
  );
  const cited = citedSections(data.sections, start, end);
  // Reference links ("[text][ref]") are defined once per document, usually at its end.
  const references = referencesOf(data.sections.map((section) => section.text).join("\n\n"));
  const context = { collection: data.collection, source: data.source, references, start, end };
  const items = data.sections.map((section) => renderSection(section, cited.has(section), context));
  panelBody.replaceChildren(h("ol", { className: "sections", "aria-label": "Sections" }, items));

  const firstCited = items.find((item) => item.classList.contains("cited"));
  if (firstCited) firstCited.tabIndex = -1;
  const focusTarget = firstCited || panelTitle;
  focusTarget.focus({ preventScroll: true });
  // A narrow range (one command's line) is shown at its block, a wider one from its section's top.
  const firstLine = firstCited?.querySelector(".cited-line");
  if (firstLine) firstLine.scrollIntoView({ block: "center" });
  else focusTarget.scrollIntoView({ block: "start" });
  const range = firstCited ? `; ${linesOf(start, end)} highlighted` : "";
  announce(`Opened ${data.source}${range}.`);
}

/** "line 41" or "lines 12–30". */
function linesOf(start, end) {
  return `${start === end ? "line" : "lines"} ${lineRange(start, end)}`;
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

function renderSection(section, cited, { collection, source, references, start, end }) {
  // Mark each block with its source lines when the text maps one to one onto the section's line
  // range (true of most Markdown; formats converted at ingest, like HTML or PDF, show the range only).
  const numbered = section.text.split("\n").length === section.end_line - section.start_line + 1;
  const body = h("div", { className: numbered ? "section-body markdown numbered" : "section-body markdown" });
  body.append(
    renderMarkdown(section.text, { headingOffset: 2, firstLine: numbered ? section.start_line : null, references }),
  );
  const whole = start != null && section.start_line >= start && section.end_line <= end;
  if (cited && numbered && !whole) markLines(body, start, end);
  linkRunbooks(body, collection, source);
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
    body,
  );
}

/**
 * Highlight the blocks of a section that hold lines start..end: the outermost block inside the
 * range, or the innermost one that overlaps it (the table row, the list item, the code block).
 */
function markLines(body, start, end) {
  const span = (el) => [Number(el.dataset.sourceLine), Number(el.dataset.sourceEnd)];
  const overlaps = (el) => {
    const [first, last] = span(el);
    return first <= end && last >= start;
  };
  for (const el of body.querySelectorAll("[data-source-line]")) {
    if (!overlaps(el) || el.parentElement.closest(".cited-line")) continue;
    const [first, last] = span(el);
    const inner = [...el.querySelectorAll("[data-source-line]")].some(overlaps);
    if ((first >= start && last <= end) || !inner) el.classList.add("cited-line");
  }
}

/** A runbook's relative links ("../db/Failover.md") open that runbook here, in the panel. */
function linkRunbooks(body, collection, source) {
  for (const link of body.querySelectorAll("a[href]")) {
    const href = link.getAttribute("href");
    if (/^(?:[a-z][a-z+.-]*:|\/\/|#)/i.test(href)) continue;
    const base = new URL(`http://runbook.invalid/${encodePath(source)}`);
    let path;
    try {
      path = decodeURIComponent(new URL(href, base).pathname.slice(1));
    } catch {
      continue; // a mangled %-escape: leave the link as it is
    }
    if (!path) continue;
    link.setAttribute("href", sourceHash(collection, path));
    link.removeAttribute("target");
    link.removeAttribute("rel");
  }
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
