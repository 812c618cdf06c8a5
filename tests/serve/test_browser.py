"""The web UI end to end: the real app under uvicorn, driven by headless Chromium.

The server reads the example runbooks, ingested with the real bundled embedder into a local
Qdrant, and writes its answers with a :class:`~opsmith.testing.FakeChatModel` that streams a
scripted answer citing the excerpt it quotes. The test uses the Debian ``chromium`` (``make
test`` installs it); Playwright never downloads a browser here. It saves its screenshots in the
test's temporary folder, or, with ``OPSMITH_UPDATE_SCREENSHOTS=1``, over the ones in ``docs/img``
that the README shows (so an ordinary test run leaves the work tree clean).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browsertools import CHROMIUM, CHROMIUM_ARGS, needs_chromium, serving
from playwright.sync_api import expect, sync_playwright

from opsmith.backend import Backend
from opsmith.config import load_settings
from opsmith.llm import Message
from opsmith.rag.answer import SYSTEM_PROMPT
from opsmith.serve.app import create_app
from opsmith.testing import FakeChatModel

pytestmark = needs_chromium
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOCS_IMG = ROOT / "docs" / "img"

QUESTION = "Checkout latency p99 is over 2 seconds, what should I look at first?"
CITED_RUNBOOK = "checkout/CheckoutHighLatency.md"  # the gold runbook in examples/questions.jsonl
UNCOVERED = "How do I rotate the TLS certificate on the mainframe batch gateway?"
COMMAND = "argocd app history checkout-api | tail -5"
ANSWER = (
    "Check for a deploy in the last 30 minutes first, and roll back if one went out [{n}]:\n\n"
    f"```bash\n{COMMAND}\n```"
)
# The LLM reviewer's reply on the review page: no findings beyond the rules'.
NO_LLM_FINDINGS = '{"security": [], "cost": [], "correctness": []}'


def _reply(messages: list[Message]) -> str:
    """What a good model would say: the command, citing the excerpt that holds it."""
    if messages[0].content != SYSTEM_PROMPT:
        return NO_LLM_FINDINGS
    excerpts = re.findall(r'<excerpt n="(\d+)"[^>]*>(.*?)</excerpt>', messages[-1].content, flags=re.DOTALL)
    return ANSWER.format(n=next((n for n, text in excerpts if COMMAND in text), "1"))


@dataclass
class Served:
    url: str
    chat_model: FakeChatModel


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The app on a free loopback port, over the example runbooks, with a scripted LLM."""
    fake = FakeChatModel(reply=_reply)
    backend = Backend(load_settings(home=tmp_path / "home", provider="none"), chat_model=fake)
    try:
        backend.ingest([EXAMPLES / "runbooks"])
        with serving(create_app(backend.settings, backend=backend)) as url:
            yield Served(url, fake)
    finally:
        backend.close()


# Records every streamed rendering of the answer, which the final answer replaces within
# milliseconds: proof that token events reached the page and were shown as they came.
RECORD_STREAMING = """
window.__streamed = [];
new MutationObserver((records) => {
  for (const record of records)
    for (const node of record.addedNodes)
      if (node.classList && node.classList.contains("stream-text")) window.__streamed.push(node.textContent);
}).observe(document, { childList: true, subtree: true });
"""


@pytest.mark.slow  # a served index and headless Chromium
def test_chat_and_review_pages_in_a_real_browser(served: Served, tmp_path: Path) -> None:
    # The README's screenshots are refreshed on request only: each run differs (timings in the page).
    screenshots = DOCS_IMG if os.environ.get("OPSMITH_UPDATE_SCREENSHOTS") == "1" else tmp_path
    screenshots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.add_init_script(RECORD_STREAMING)

        # Chat: ask with the keyboard, the answer streams in, then settles with its citations.
        page.goto(served.url + "/")
        expect(page.locator("#mode")).to_contain_text("fake")
        expect(page.get_by_label("Collection")).to_have_value("runbooks")
        box = page.get_by_label("Question")
        box.fill(QUESTION)
        box.press("Enter")
        answer = page.locator(".exchange .answer").first
        expect(answer).to_have_class("answer")  # neither pending nor streaming: the final answer
        final = _reply(served.chat_model.calls[0]["messages"])
        streamed = page.evaluate("window.__streamed")
        assert len(streamed) >= 3, streamed
        assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(streamed))
        assert streamed[-1] == final
        assert served.chat_model.calls[0]["stream"] is True
        expect(answer.locator("pre code")).to_have_text(COMMAND)
        expect(answer.locator(".citations li")).to_have_count(1)
        expect(answer.locator(".citations")).to_contain_text(CITED_RUNBOOK)
        expect(page.locator("#status")).to_have_text("Answer ready, 1 citation.")

        # A citation opens its runbook beside the answer, rendered, its cited sections highlighted and focused.
        marker = answer.locator(".answer-body a.cite")
        expect(marker).to_have_text(re.search(r"\[\d+\]", final)[0])  # type: ignore[index]
        marker.click()
        panel = page.locator("#source-panel")
        expect(panel).to_be_visible()
        expect(panel.locator("#source-meta")).to_contain_text(f"runbooks / {CITED_RUNBOOK}")
        hash_ = re.fullmatch(r"#source=runbooks/(.+)&lines=(\d+)-(\d+)", page.evaluate("location.hash"))
        assert hash_ is not None
        assert hash_[1] == CITED_RUNBOOK
        start, end = int(hash_[2]), int(hash_[3])
        cited = panel.locator(".section.cited")
        expect(cited.first).to_be_visible()
        expect(cited.first).to_be_focused()
        expect(cited.first.locator(".badge")).to_have_text("Cited")
        assert start <= int(cited.first.get_attribute("data-start") or 0) <= end
        assert int(cited.last.get_attribute("data-end") or 0) == end
        # The cited sections are the runbook's own text, and hold the command the answer quotes.
        runbook = (EXAMPLES / "runbooks" / CITED_RUNBOOK).read_text(encoding="utf-8")
        quoted = cited.locator("pre code").all_inner_texts()
        assert quoted
        assert all(code.strip() in runbook for code in quoted)
        assert any(COMMAND in code.splitlines() for code in quoted)
        page.screenshot(path=str(screenshots / "service-chat.png"))

        # Escape closes the panel and puts focus back on the citation.
        page.keyboard.press("Escape")
        expect(panel).to_be_hidden()
        expect(marker).to_be_focused()

        # What the runbooks do not cover is refused, plainly.
        box.fill(UNCOVERED)
        box.press("Enter")
        refused = page.locator(".exchange .answer").nth(1)
        expect(refused).to_have_class("answer refused")
        expect(refused.get_by_role("heading")).to_have_text("Not in the runbooks")
        assert len(served.chat_model.calls) == 1  # refused before any LLM call

        # Review: upload .tf files and paste one more; findings link to their lines.
        page.get_by_role("link", name="Review").click()
        expect(page).to_have_title(re.compile("Review Terraform"))
        vulnerable = sorted((EXAMPLES / "terraform" / "vulnerable").glob("*.tf"))
        page.get_by_label("Upload .tf files").set_input_files([p for p in vulnerable if p.name != "s3.tf"])
        expect(page.locator("#upload-list")).to_contain_text(f"{len(vulnerable) - 1} files")
        page.get_by_label("Name of the pasted file").fill("s3.tf")
        page.get_by_label("Terraform", exact=True).fill((EXAMPLES / "terraform" / "vulnerable" / "s3.tf").read_text())
        page.get_by_role("button", name="Review", exact=True).click()
        findings = page.locator("#findings")
        expect(findings.get_by_role("heading", name="Security")).to_be_visible()
        expect(findings.locator(".category").first.locator("h4").first).to_have_text(re.compile(r"^Critical \(\d+\)$"))
        expect(page.locator("#summary")).to_contain_text(f"in {len(vulnerable)} files")
        # The summary and the first findings beside the code view, rather than the form above them.
        page.evaluate("document.getElementById('summary').scrollIntoView({block: 'start'}); window.scrollBy(0, -70)")
        page.screenshot(path=str(screenshots / "service-review.png"))
        public_acl = findings.locator(".finding", has_text="public-read").locator("a.line-link")
        expect(public_acl).to_have_text("s3.tf:3")
        public_acl.click()
        line = page.locator("ol.code li.highlighted")
        expect(line).to_be_focused()
        expect(line.locator("code")).to_contain_text('acl    = "public-read"')

        browser.close()
    assert errors == []
    for name in ("service-chat.png", "service-review.png"):
        assert (screenshots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
