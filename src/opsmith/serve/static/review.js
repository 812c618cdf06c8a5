// The review page: send pasted and uploaded Terraform to POST /v1/review, show the findings by
// category then severity, and link each finding to its line in a read-only, numbered code view.

import { ApiError, announce, apiJSON, auth, h, loadInfo, plural } from "./common.js";

const CATEGORIES = [
  ["security", "Security"],
  ["cost", "Cost"],
  ["correctness", "Correctness"],
];
const SEVERITY_ORDER = ["critical", "warning"];

const form = document.getElementById("review-form");
const upload = document.getElementById("tf-upload");
const uploadList = document.getElementById("upload-list");
const pastedName = document.getElementById("tf-name");
const pasted = document.getElementById("tf-text");
const reviewButton = document.getElementById("review-button");
const results = document.getElementById("results");
const summary = document.getElementById("summary");
const findingsBody = document.getElementById("findings-body");
const codeBody = document.getElementById("code-body");
const errorBox = h("div", { className: "answer error", role: "alert", hidden: true });
form.after(errorBox);

let uploaded = {}; // file name -> content, read when the files are chosen

async function onUpload() {
  uploaded = {};
  for (const file of upload.files) uploaded[file.name] = await file.text();
  const names = Object.keys(uploaded);
  uploadList.textContent = names.length ? `${plural(names.length, "file")}: ${names.join(", ")}` : "";
}

/** The files to review: every upload, plus the pasted text under its name (which wins a clash). */
function collectFiles() {
  const files = { ...uploaded };
  if (pasted.value.trim()) files[pastedName.value.trim() || "main.tf"] = pasted.value;
  return files;
}

async function onSubmit(event) {
  event.preventDefault();
  const files = collectFiles();
  if (!Object.keys(files).length) {
    announce("Paste Terraform or choose .tf files first.");
    pasted.focus();
    return;
  }
  reviewButton.disabled = true;
  errorBox.hidden = true;
  announce(`Reviewing ${Object.keys(files).length} file(s)…`);
  try {
    const report = await apiJSON("/v1/review", { files });
    render(report, files);
  } catch (error) {
    showError(error);
  } finally {
    reviewButton.disabled = false;
  }
}

function showError(error) {
  results.hidden = true;
  const detail = error instanceof ApiError ? error.detail || error.title : error.message;
  const parts = [h("h2", {}, "Could not review"), h("p", { className: "error-detail" }, detail)];
  if (error instanceof ApiError) {
    parts.push(h("p", { className: "answer-meta" }, `HTTP ${error.status} ${error.title}`));
  }
  errorBox.replaceChildren(...parts);
  errorBox.hidden = false;
  announce(`Error: ${detail}`);
}

// ---------------------------------------------------------------------------------------------
// Rendering

function render(report, files) {
  const lineIds = renderCode(files);
  const all = CATEGORIES.flatMap(([key]) => report[key] || []);
  const counts = { critical: 0, warning: 0 };
  for (const finding of all) counts[finding.severity] = (counts[finding.severity] || 0) + 1;
  const info = report.summary || {};
  const checked = (info.files || Object.keys(files)).length;

  const notes = [];
  for (const skipped of info.skipped || []) notes.push(`Skipped ${skipped.path}: ${skipped.reason}`);
  for (const warning of info.warnings || []) notes.push(warning);

  if (!all.length) {
    summary.replaceChildren();
    findingsBody.replaceChildren(
      h(
        "div",
        { className: "no-findings" },
        h("h3", {}, "No findings"),
        h("p", {}, `Checked ${plural(checked, "file")}: no security, cost or correctness issues found.`),
      ),
      ...notesList(notes),
    );
  } else {
    const verdict = info.fail_on && info.fail_on !== "none" ? (info.failed ? "fails" : "passes") : null;
    summary.replaceChildren(
      h("span", { className: "count-critical" }, `${counts.critical} critical`),
      " · ",
      h("span", { className: "count-warning" }, plural(counts.warning, "warning")),
      ` in ${plural(checked, "file")}`,
      verdict ? ` · ${verdict} with --fail-on ${info.fail_on}` : "",
    );
    findingsBody.replaceChildren(
      ...notesList(notes),
      ...CATEGORIES.map(([key, label]) => renderCategory(label, report[key] || [], lineIds)),
    );
  }
  results.hidden = false;
  announce(all.length ? `${plural(all.length, "finding")}, ${counts.critical} critical.` : "No findings.");
  results.scrollIntoView({ block: "start" });
}

/** Skipped files and reviewer warnings, as a list to spread into replaceChildren (empty if none). */
function notesList(notes) {
  return notes.length ? [h("ul", { className: "notes" }, notes.map((note) => h("li", {}, note)))] : [];
}

function renderCategory(label, findings, lineIds) {
  const groups = new Map();
  for (const finding of findings) {
    if (!groups.has(finding.severity)) groups.set(finding.severity, []);
    groups.get(finding.severity).push(finding);
  }
  // Critical first, then warning, then any severity this page does not know yet.
  const rank = (severity) =>
    SEVERITY_ORDER.includes(severity) ? SEVERITY_ORDER.indexOf(severity) : SEVERITY_ORDER.length;
  const severities = [...groups.keys()].sort((a, b) => rank(a) - rank(b));

  return h(
    "section",
    { className: "category" },
    h("h3", {}, label, " ", h("span", { className: "count" }, `(${findings.length})`)),
    findings.length ? null : h("p", { className: "none" }, `No ${label.toLowerCase()} findings.`),
    severities.map((severity) => {
      const items = groups.get(severity).sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
      return [
        h(
          "h4",
          { className: `severity-heading sev-${severity}` },
          capitalise(severity),
          " ",
          h("span", { className: "count" }, `(${items.length})`),
        ),
        h("ul", { className: "finding-list" }, items.map((finding) => renderFinding(finding, lineIds))),
      ];
    }),
  );
}

function renderFinding(finding, lineIds) {
  const id = lineIds.get(`${finding.file}:${finding.line}`);
  const where = `${finding.file}:${finding.line}`;
  const meta = [id ? h("a", { className: "line-link", href: `#${id}`, "data-line": id }, where) : h("span", {}, where)];
  if (finding.resource) meta.push(" · ", h("code", {}, finding.resource));
  if (finding.rule) meta.push(" · ", h("span", {}, finding.rule));
  if (finding.source === "llm") meta.push(" · ", h("span", { className: "badge" }, "LLM"));
  return h(
    "li",
    { className: `finding sev-${finding.severity}` },
    h(
      "p",
      { className: "finding-issue" },
      h("span", { className: "badge sev" }, capitalise(finding.severity)),
      " ",
      finding.issue,
    ),
    finding.fix ? h("p", { className: "finding-fix" }, h("strong", {}, "Fix: "), finding.fix) : null,
    h("p", { className: "finding-meta" }, meta),
  );
}

/** Number every submitted file's lines; returns "file:line" -> element id. */
function renderCode(files) {
  const ids = new Map();
  const names = Object.keys(files).sort();
  codeBody.replaceChildren(
    ...names.map((name, index) => {
      const lines = files[name].replace(/\r\n?/g, "\n").replace(/\n$/, "").split("\n");
      return h(
        "section",
        { className: "code-file" },
        h("h3", {}, name),
        h(
          "ol",
          { className: "code" },
          lines.map((text, i) => {
            const id = `f${index}-L${i + 1}`;
            ids.set(`${name}:${i + 1}`, id);
            // A non-breaking space keeps empty lines their height.
            return h("li", { id }, h("code", {}, text || "\u00a0"));
          }),
        ),
      );
    }),
  );
  return ids;
}

function capitalise(word) {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

// ---------------------------------------------------------------------------------------------
// Jumping between a finding and its line

let returnTo = null;

function showLine(id, from) {
  const line = document.getElementById(id);
  if (!line) return;
  for (const old of codeBody.querySelectorAll(".highlighted")) {
    old.classList.remove("highlighted");
    old.removeAttribute("aria-current");
    old.querySelector(".back-link")?.remove();
  }
  line.classList.add("highlighted");
  line.setAttribute("aria-current", "location");
  line.tabIndex = -1;
  returnTo = from;
  // Keyboard users get a way back to the finding they came from.
  line.append(h("button", { type: "button", className: "back-link link-button" }, "Back to finding"));
  line.focus({ preventScroll: true });
  line.scrollIntoView({ block: "center" });
  history.replaceState(null, "", `#${id}`);
}

findingsBody.addEventListener("click", (event) => {
  const link = event.target.closest("a.line-link");
  if (!link) return;
  event.preventDefault();
  showLine(link.dataset.line, link);
});

codeBody.addEventListener("click", (event) => {
  if (!event.target.closest(".back-link")) return;
  returnTo?.focus();
  returnTo?.scrollIntoView({ block: "center" });
});

// ---------------------------------------------------------------------------------------------

form.addEventListener("submit", onSubmit);
upload.addEventListener("change", onUpload);
document.getElementById("clear-button").addEventListener("click", () => {
  form.reset();
  uploaded = {};
  uploadList.textContent = "";
  results.hidden = true;
  errorBox.hidden = true;
  announce("Cleared.");
  pasted.focus();
});
auth.init(() => {});
loadInfo().catch((error) => announce(`Could not reach the opsmith API: ${error.message}`));
