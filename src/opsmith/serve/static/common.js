// Shared by the chat and review pages: DOM building, the API client with bearer-token auth,
// and the Server-Sent Events parser. No framework and no build step: plain ES modules.
//
// Every string from the server reaches the page through textContent (see `h`), never innerHTML;
// Markdown (runbooks, answers) goes through markdown.js, which sanitises what it renders.

const TOKEN_KEY = "opsmith.token";

/**
 * Build an element: h("a", {href: "#x", className: "cite"}, "text", otherNode).
 * Props are assigned as properties, except "data-*", "aria-*" and "role", which are attributes.
 * Children are nodes, strings (which become text nodes, so they are never parsed as HTML) or
 * arrays of them, nested at any depth; null, undefined and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") {
      node.setAttribute(key, value === true ? "true" : String(value));
    } else {
      node[key] = value;
    }
  }
  node.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

/** An error from the API, carrying the problem JSON's fields (RFC 9457). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title || `HTTP ${status}`;
    this.detail = problem.detail || "";
    this.requestId = problem.request_id || null;
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Turn a failed response into an ApiError, whatever its body is. */
export async function problemOf(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    // Not JSON (a proxy's HTML error page, say): fall back to the status line.
    problem = { title: response.statusText || `HTTP ${response.status}` };
  }
  if (response.status === 429) {
    const retry = response.headers.get("Retry-After");
    if (retry && !problem.detail) problem.detail = `Too many requests — try again in ${retry} s.`;
  }
  return new ApiError(response.status, problem);
}

/**
 * fetch() against the API with the stored bearer token. Returns the Response when it is OK;
 * otherwise throws ApiError (and on 401 asks for a token first).
 */
export async function apiFetch(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const token = getToken();
  if (token) headers.set("Authorization", `Bearer ${token}`);
  if (options.body && typeof options.body === "string" && !headers.has("Content-Type")) {
    headers.set("Content-Type", "application/json");
  }
  const response = await fetch(path, { ...options, headers });
  if (response.ok) return response;
  const error = await problemOf(response);
  if (response.status === 401) auth.require(error.detail);
  throw error;
}

/** GET or POST JSON and return the parsed body. */
export async function apiJSON(path, body) {
  const options = body === undefined ? {} : { method: "POST", body: JSON.stringify(body) };
  const response = await apiFetch(path, options);
  return response.json();
}

/**
 * The token form in the page header (#auth). It appears when /v1/info says auth is required or
 * any call gets a 401; saving a token keeps it in sessionStorage (gone when the tab closes) and
 * calls the page's onChange so it can retry what failed.
 */
export const auth = {
  onChange: () => {},

  init(onChange) {
    this.onChange = onChange;
    const form = document.getElementById("auth");
    const input = document.getElementById("token");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      setToken(input.value.trim());
      input.value = "";
      this.render();
      this.onChange();
    });
    document.getElementById("forget-token").addEventListener("click", () => {
      setToken("");
      this.require("Token forgotten. Paste a token to call the API.");
    });
    this.render();
  },

  /** Show the token field with why (the server's 401 detail, or our own words) and focus it. */
  require(message) {
    const wasOpen = !document.getElementById("auth-fields").hidden;
    document.getElementById("auth").hidden = false;
    document.getElementById("auth-fields").hidden = false;
    document.getElementById("forget-token").hidden = !getToken();
    document.getElementById("auth-message").textContent = message || "This server needs an API token.";
    if (!wasOpen) document.getElementById("token").focus();
  },

  /** The resting state: hidden, or a one-line note with "Forget token" when one is stored. */
  render() {
    const stored = Boolean(getToken());
    document.getElementById("auth").hidden = !stored;
    document.getElementById("auth-fields").hidden = true;
    document.getElementById("forget-token").hidden = !stored;
    document.getElementById("auth-message").textContent = stored ? "Using the API token saved for this tab." : "";
  },
};

/** GET /v1/info (needs no token) and show the mode in the header; returns the info. */
export async function loadInfo() {
  const info = await apiJSON("/v1/info");
  const mode = document.getElementById("mode");
  if (mode) {
    mode.textContent =
      info.provider === "none"
        ? "extractive: quotes runbook passages, no LLM"
        : `LLM: ${info.provider}${info.model ? ` · ${info.model}` : ""}`;
    mode.title = `opsmith ${info.version} · retrieval ${info.retrieval_mode}`;
  }
  if (info.auth_required && !getToken()) auth.require("This server needs an API token.");
  return info;
}

/** Announce a short status to screen readers (and show it) through the page's live region. */
export function announce(text) {
  const status = document.getElementById("status");
  if (status) status.textContent = text;
}

/**
 * An incremental parser for a text/event-stream body (the WHATWG "event stream" format).
 *
 * Feed it decoded text as it arrives with push(); it calls onEvent({event, data}) once per
 * complete event. Chunks may split an event, a line, or even a "\r\n" pair anywhere; multiple
 * "data:" lines of one event are joined with "\n"; ":" lines are comments (keep-alives).
 * end() flushes a last event the server did not close with a blank line.
 */
export function createEventStreamParser(onEvent) {
  let buffer = "";
  let type = "";
  let data = [];

  function dispatch() {
    if (data.length) onEvent({ event: type || "message", data: data.join("\n") });
    type = "";
    data = [];
  }

  function line(text) {
    if (text === "") return dispatch();
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
    // "id" and "retry" only matter to EventSource reconnection, which we do not do.
  }

  return {
    push(chunk) {
      buffer += chunk;
      const terminator = /\r\n|\r|\n/g;
      let start = 0;
      let match;
      while ((match = terminator.exec(buffer))) {
        // A "\r" at the very end may be the first half of "\r\n": wait for the next chunk.
        if (match[0] === "\r" && match.index === buffer.length - 1) break;
        line(buffer.slice(start, match.index));
        start = terminator.lastIndex;
      }
      buffer = buffer.slice(start);
    },
    end() {
      if (buffer) line(buffer.replace(/\r$/, ""));
      buffer = "";
      dispatch();
    },
  };
}

/** Read a fetch Response body as an event stream, calling onEvent for each event. */
export async function readEventStream(response, onEvent) {
  const parser = createEventStreamParser(onEvent);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.push(value);
  }
  parser.end();
}

/** "1 file", "3 files". */
export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** "12–30", or "12" for a one-line range. */
export function lineRange(start, end) {
  return start === end ? `${start}` : `${start}–${end}`;
}
