"""The chat page in a real browser (Playwright driving Debian's Chromium) against the real server.

`qa serve` runs as a subprocess (the shared live-server harness) over a copy of the demo corpus plus
one hostile document whose text is HTML and script. Screenshots go to test-artifacts/ at the
repository root.

Needs: `pip install playwright` (no `playwright install`: the browser is Debian's) and
`apt-get install chromium`. Outside CI the tests are skipped when either is missing; in CI
(CI set) they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from qa.bench.live_server import HOST, LiveServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_TIMEOUT_S = 180
ANSWER_TIMEOUT_MS = 120_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}

# q01 of corpus/questions.jsonl: the page shows what the API answers, checked against it below.
ANSWERABLE = "When did Canadian and Ukrainian negotiators hold their first session on a bilateral security agreement?"
UNANSWERABLE = "Who won the 2023 Tour de France?"
EVIL_QUESTION = "Where was the Zorblax treaty signed?"

SCRIPT_TEXT = "<script>window.__pwned = 1</script>"
IMG_TEXT = '<img src=x onerror="window.__pwned=1">'
EVIL_TITLE = f"The Zorblax archive {IMG_TEXT}"
# Astral characters (emoji) before the answer: the page must turn the server's code-point
# offsets into UTF-16 ones, or the highlight lands beside the answer.
EVIL_DOCUMENT = f"""Title: {EVIL_TITLE}
Source: Quillon Gazette
Published: 2023-09-02

🛰️ The Zorblax archive 🎉 keeps the papers of the old Zorblax league. 📜📜📜

The Zorblax treaty was signed in Quillon. The archive copy carries a strange note: {SCRIPT_TEXT}
and below it {IMG_TEXT} scrawled in the margin.

Historians of the Zorblax league 🧭 still argue about the treaty's wording.
"""


# ---------------------------------------------------------------------------------- fixtures


def _unavailable(reason: str) -> None:
    """Skip on a developer machine without a browser; in CI a missing browser is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    """`qa serve` over the demo corpus plus a hostile document (indexed at start); yields its base URL."""
    tmp = tmp_path_factory.mktemp("browser")
    corpus = tmp / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    (corpus / "evil.txt").write_text(EVIL_DOCUMENT, encoding="utf-8")
    with LiveServer(tmp / "index", corpus, log=tmp / "server.log", ready_timeout_s=STARTUP_TIMEOUT_S) as live:
        yield f"http://{HOST}:{live.port}"


class PageWatch:
    """A page plus what went wrong on it: uncaught exceptions and CSP violations."""

    def __init__(self, page):
        self.page = page
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception: {error}"))
        page.on("console", self._console)

    def _console(self, message) -> None:
        text = message.text
        if message.type == "error" and ("Content Security Policy" in text or "Refused to" in text):
            self.problems.append(f"CSP violation: {text}")

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture
def open_page(browser, server):
    """Opens the chat page at a viewport size; every page is checked for errors at the end."""
    contexts, watches = [], []

    def opener(viewport=DESKTOP) -> PageWatch:
        context = browser.new_context(viewport=viewport, device_scale_factor=1, reduced_motion="reduce")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        watch = PageWatch(page)
        watches.append(watch)
        response = page.goto(f"{server}/")
        assert response is not None and response.ok, f"GET / failed: {response and response.status}"
        page.locator("#question").wait_for(state="visible")
        return watch

    yield opener
    try:
        for watch in watches:
            watch.assert_clean()
    finally:
        for context in contexts:
            context.close()


# ---------------------------------------------------------------------------------- helpers


def _api_answer(page, server: str, question: str) -> dict:
    response = page.request.post(f"{server}/api/ask", data={"question": question}, timeout=ANSWER_TIMEOUT_MS)
    assert response.ok, f"POST /api/ask {response.status}: {response.text()}"
    return response.json()


def _ask(page, question: str):
    """Types a question, sends it with Enter, and returns the locator of the reply it got."""
    from playwright.sync_api import expect

    replies = page.locator("#conversation .reply:not(.pending)")
    before = replies.count()
    page.locator("#question").fill(question)
    page.locator("#question").press("Enter")
    expect(replies).to_have_count(before + 1, timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#question")).to_be_enabled()
    expect(page.locator("#send")).to_be_enabled()
    return replies.nth(before)  # not .last: locators are lazy and later replies would shift it


def _describe(reply) -> str:
    return f"class={reply.get_attribute('class')!r} text={reply.inner_text()[:600]!r}"


def _assert_in_viewport(page, locator) -> None:
    from playwright.sync_api import expect

    expect(locator).to_be_in_viewport()
    box = locator.bounding_box()
    size = page.viewport_size
    assert box is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], box
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], box


def _no_horizontal_overflow(page) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"horizontal overflow: scrollWidth {widths[0]} > innerWidth {widths[1]}"


def _screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), animations="disabled")


# ---------------------------------------------------------------------------------- tests


def test_answer_with_citation_opens_the_document_at_the_quote(open_page, server):
    from playwright.sync_api import expect

    page = open_page(DESKTOP).page
    expected = _api_answer(page, server, ANSWERABLE)
    assert not expected["abstained"] and expected["citations"], f"the API did not answer: {expected}"
    first = expected["citations"][0]

    reply = _ask(page, ANSWERABLE)
    assert "answer" in (reply.get_attribute("class") or "").split(), _describe(reply)
    expect(reply.locator(".answer-text")).to_have_text(expected["text"])
    assert reply.locator(".answer-text").inner_text().strip()
    expect(reply.locator(".confidence").first).to_contain_text(f"{round(expected['confidence'] * 100)}%")
    citations = reply.locator(".citations .citation")
    expect(citations).to_have_count(len(expected["citations"]))
    expect(citations.first).to_contain_text(first["title"])
    # The answer is marked inside its sentence, cut by offsets.
    expect(reply.locator("mark.answer-span").first).to_have_text(first["quote"])

    alternatives = reply.locator("details.alternatives")
    if expected["alternatives"]:
        expect(alternatives).to_have_count(1)
        assert not alternatives.evaluate("d => d.open"), "alternatives should start collapsed"
        alternatives.locator("summary").click()
        assert alternatives.evaluate("d => d.open")
        expect(alternatives.locator(".alternative")).to_have_count(len(expected["alternatives"]))
        expect(alternatives.locator(".citation").first).to_be_visible()
    else:
        expect(alternatives).to_have_count(0)

    citations.first.click()
    panel = page.locator("#document-panel")
    expect(panel).to_be_visible()
    mark = page.locator("#document-text mark.cited")
    expect(mark).to_have_count(1)
    assert mark.text_content() == first["quote"]
    _assert_in_viewport(page, mark)
    expect(page.locator("#document-title")).to_have_text(first["title"])
    _screenshot(page, "chat-desktop.png")

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    citations.first.click()
    expect(panel).to_be_visible()
    expect(mark).to_have_count(1)
    page.locator("#document-close").click()
    expect(panel).to_be_hidden()


def test_news_answers_show_agreement_conflicts_and_resolved_days(open_page, server):
    from playwright.sync_api import expect

    page = open_page(DESKTOP).page
    question = "How much wheat did the Aurora Dawn carry out of Odesa?"
    expected = _api_answer(page, server, question)
    assert expected["sources"] >= 2, expected
    reply = _ask(page, question)
    expect(reply.locator(".agreement")).to_have_text(f"{expected['sources']} sources agree")
    expect(reply.locator(".citations .citation")).to_have_count(len(expected["citations"]))
    for outlet in ("Harbour Wire", "Danube Daily", "Coastline Times"):
        expect(reply.locator(".citations")).to_contain_text(outlet)

    question = "How much aid has Norway given Ukraine so far this year?"
    expected = _api_answer(page, server, question)
    assert expected["conflicts"], expected
    reply = _ask(page, question)
    columns = reply.locator(".conflicts .conflict")
    expect(columns).to_have_count(1 + len(expected["conflicts"]))
    expect(columns.nth(0).locator(".conflict-text")).to_have_text(expected["text"])
    expect(columns.nth(1).locator(".conflict-text")).to_have_text(expected["conflicts"][0]["text"])
    expect(columns.nth(0).locator(".conflict-date")).to_have_text("as of 2 Oct 2023")
    expect(columns.nth(1).locator(".conflict-date")).to_have_text("as of 10 Aug 2023")
    _screenshot(page, "chat-conflicts-desktop.png")

    question = "When did the Ukrainian deputy ministers meet their Canadian counterparts in Ottawa?"
    expected = _api_answer(page, server, question)
    assert expected["citations"] and expected["citations"][0]["dates"], expected
    reply = _ask(page, question)
    expect(reply.locator(".resolved-dates").first).to_contain_text("Friday = 25 Aug 2023")


def test_unanswerable_question_is_shown_as_an_abstention(open_page, server):
    from playwright.sync_api import expect

    page = open_page(DESKTOP).page
    reply = _ask(page, UNANSWERABLE)
    classes = (reply.get_attribute("class") or "").split()
    assert "abstention" in classes and "answer" not in classes, _describe(reply)
    expect(reply.locator(".abstention-message")).not_to_be_empty()
    expect(reply.locator(".passage").first).to_be_visible()
    expect(reply.locator(".passage-snippet").first).not_to_be_empty()
    if reply.locator(".guess").count():
        expect(reply.locator(".guess-label")).to_contain_text("guess")
    _screenshot(page, "chat-abstention-desktop.png")


def test_document_text_is_rendered_as_text_never_as_html(open_page, server):
    from playwright.sync_api import expect

    page = open_page(DESKTOP).page
    expected = _api_answer(page, server, EVIL_QUESTION)
    reply = _ask(page, EVIL_QUESTION)

    def cites_evil(citations):
        return next((i for i, c in enumerate(citations) if c["doc_id"] == "evil.txt"), None)

    mark = page.locator("#document-text mark.cited")
    if not expected["abstained"] and cites_evil(expected["citations"]) is not None:
        index = cites_evil(expected["citations"])
        quote = expected["citations"][index]["quote"]
        link = reply.locator(".citations .citation").nth(index)
    else:
        # Not the top answer: an alternative (or the best guess) from it, else a closest passage.
        found = [(a, i) for a, alternative in enumerate(expected["alternatives"])
                 if (i := cites_evil(alternative["citations"])) is not None]
        if found and not expected["abstained"]:
            a, i = found[0]
            quote = expected["alternatives"][a]["citations"][i]["quote"]
            reply.locator("details.alternatives summary").click()
            link = reply.locator(".alternative").nth(a).locator(".citation").nth(i)
        elif found and found[0][0] == 0:
            quote = expected["alternatives"][0]["citations"][found[0][1]]["quote"]
            link = reply.locator(".guess .citation").nth(found[0][1])
        else:
            quote = None
            link = reply.locator(".passage-link", has_text="Zorblax").first
            assert link.count(), f"the hostile document was neither cited nor among the passages: {_describe(reply)}"
    expect(link).to_contain_text(EVIL_TITLE)  # the title's markup shows as text
    link.click()
    if quote is not None:
        expect(mark).to_have_count(1)
        assert mark.text_content() == quote  # exact despite the emoji before it
        _assert_in_viewport(page, mark)

    document_text = page.locator("#document-text")
    expect(page.locator("#document-panel")).to_be_visible()
    expect(document_text).to_contain_text(SCRIPT_TEXT)
    expect(document_text).to_contain_text(IMG_TEXT)
    expect(page.locator("#document-title")).to_have_text(EVIL_TITLE)
    expect(page.get_by_text(SCRIPT_TEXT, exact=False).first).to_be_visible()
    # Nothing from the data became an element, and nothing ran.
    assert page.locator("#conversation script, #conversation img, #document-panel script, #document-panel img").count() == 0
    page.wait_for_timeout(300)  # an <img onerror> would have fired by now
    assert page.evaluate("() => typeof window.__pwned") == "undefined"


def test_phone_width_has_no_horizontal_scrolling_and_a_full_screen_document(open_page, server):
    from playwright.sync_api import expect

    page = open_page(PHONE).page
    _no_horizontal_overflow(page)
    reply = _ask(page, ANSWERABLE)
    assert "answer" in (reply.get_attribute("class") or "").split(), _describe(reply)
    _no_horizontal_overflow(page)
    _screenshot(page, "chat-phone.png")  # the page scrolls the question to the top by itself
    _ask(page, UNANSWERABLE)
    _no_horizontal_overflow(page)

    reply.locator(".citation").first.click()
    panel = page.locator("#document-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#document-text mark.cited")).to_have_count(1)
    _assert_in_viewport(page, page.locator("#document-text mark.cited"))
    box = panel.bounding_box()
    assert box is not None and box["x"] == 0 and box["width"] == PHONE["width"], f"panel is not full width: {box}"
    assert box["height"] >= PHONE["height"] - 1, f"panel is not full height: {box}"
    _no_horizontal_overflow(page)
    _screenshot(page, "chat-phone-document.png")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()


def test_controls_are_disabled_while_waiting_and_errors_show_in_the_conversation(open_page, server):
    from playwright.sync_api import expect

    page = open_page(DESKTOP).page
    # The controls are disabled in the same task that sends the request.
    page.locator("#question").fill(ANSWERABLE)
    states = page.evaluate("""() => {
        document.getElementById('ask-form').requestSubmit();
        return [document.getElementById('question').disabled, document.getElementById('send').disabled];
    }""")
    assert states == [True, True]
    expect(page.locator("#conversation .reply:not(.pending)")).to_have_count(1, timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#question")).to_be_enabled()

    # An HTTP error: its message shows, styled as an error, as text.
    error_body = {"error": {"code": "internal", "message": "The reader <b>failed</b>."}}
    page.route("**/api/ask", lambda route: route.fulfill(
        status=500, content_type="application/json", body=json.dumps(error_body)))
    reply = _ask(page, "What happens when the server fails?")
    assert "error" in (reply.get_attribute("class") or "").split(), _describe(reply)
    expect(reply).to_contain_text("The reader <b>failed</b>.")
    page.unroute("**/api/ask")

    # A network failure.
    page.route("**/api/ask", lambda route: route.abort("connectionrefused"))
    reply = _ask(page, "What happens when the network fails?")
    assert "error" in (reply.get_attribute("class") or "").split(), _describe(reply)
    expect(reply).to_contain_text("Could not reach the server")
    page.unroute("**/api/ask")
