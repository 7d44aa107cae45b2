"""History in a real browser (Debian's Chromium, headless): a conversation comes back after
the page is reloaded, from the list; another browser (a fresh context: its own cookie) sees
none of it; "Remember that ..." shows up in the memory list, a recall question reaches the model
with the moment, and Forget everything clears it; two logged-in users are kept apart."""

import pytest

from app.store.database import open_store
from bench.browser import launch_chromium
from tests.web_support import (
    WAIT_MS,
    LiveServer,
    PacedModel,
    answer_text,
    needs_chromium,
    open_app,
    screenshot,
    send,
    user_messages,
    wait_for_answers,
    wait_until,
)

pytestmark = needs_chromium


class RecordingModel(PacedModel):
    """The paced tiny model, keeping the last question as the model read it."""

    read: str = ""

    def stream(self, messages, options=None, owner: str = ""):
        self.read = messages[-1].text
        return super().stream(messages, options, owner)


@pytest.fixture(scope="module")
def recording(model):
    return RecordingModel(model, pace_s=0.01, max_tokens=8)


@pytest.fixture(scope="module")
def server(recording, tmp_path_factory):
    store = open_store(None, tmp_path_factory.mktemp("data"))
    with LiveServer(recording, store=store) as live:
        yield live
    store.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def open_history(page) -> None:
    """Open the panel, once the page's load event has filled it (its memory line is shown)."""
    page.locator("#history").get_by_text("Conversations and memory").click()
    memory = page.locator("#memory")
    wait_until(lambda: memory.inner_text().strip(), WAIT_MS / 1000, "the history panel")


def listed_titles(page) -> list[str]:
    """The conversation list's choices, as the dropdown shows them."""
    box = page.locator("#conversations input")
    box.click()
    options = page.locator(f"#{box.get_attribute('aria-controls')} [role=option]")
    titles = [options.nth(i).inner_text().strip() for i in range(options.count())]
    page.keyboard.press("Escape")
    return titles


def test_a_conversation_comes_back_after_a_reload_and_only_in_its_own_browser(browser, server):
    mine = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = open_app(mine, server.url)
    send(page, "Which train goes to Lyon?")
    wait_for_answers(page, 1)
    answered = answer_text(page)
    assert any(c["name"] == "lunettes_browser" for c in mine.cookies())

    page.reload()
    page.wait_for_selector("#conversation")
    assert user_messages(page).count() == 0  # a fresh page: an empty chat
    open_history(page)
    page.locator("#conversations input").click()
    options = page.locator("[data-testid=dropdown-option]")
    options.first.wait_for(timeout=WAIT_MS)
    assert [options.nth(i).inner_text().strip() for i in range(options.count())] == [
        "Which train goes to Lyon?"
    ]
    options.first.click()
    user_messages(page).first.get_by_text("Which train goes to Lyon?").wait_for(timeout=WAIT_MS)
    wait_until(lambda: answer_text(page) == answered, WAIT_MS / 1000, "the kept answer")
    screenshot(page, "history-resumed.png")

    theirs = browser.new_context()
    other = open_app(theirs, server.url)
    open_history(other)
    assert listed_titles(other) == []
    theirs.close()
    mine.close()


def test_remember_recall_and_forget_everything(browser, server, recording):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = open_app(context, server.url)
    send(page, "Remember that my bike is by the library")
    wait_until(
        lambda: "I'll remember: your bike is by the library" in answer_text(page),
        WAIT_MS / 1000, "the kept answer",
    )  # fmt: skip
    open_history(page)
    memory = page.locator("#memory")
    wait_until(
        lambda: "your bike is by the library" in memory.inner_text(), WAIT_MS / 1000, "memory"
    )
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#forget-everything").click()
    wait_until(lambda: "Nothing remembered yet" in memory.inner_text(), WAIT_MS / 1000, "forgotten")
    assert listed_titles(page) == []
    context.close()


def log_in(browser, url: str, user: str, password: str):
    """A new browser (context) logged in to the web app as `user`, on the app's page."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#conversation", timeout=WAIT_MS)
    return context, page


def test_with_logins_history_belongs_to_the_user_in_any_browser(browser, model, tmp_path):
    store = open_store(None, tmp_path / "data")
    logins = [("ana", "pw-ana"), ("bo", "pw-bo")]
    paced = PacedModel(model, pace_s=0.01, max_tokens=8)
    with LiveServer(paced, store=store, ui_login=logins) as server:
        first, page = log_in(browser, server.url, "ana", "pw-ana")
        send(page, "Where is the museum?")
        wait_for_answers(page, 1)
        first.close()

        other, page = log_in(browser, server.url, "bo", "pw-bo")  # another user
        open_history(page)
        assert listed_titles(page) == []
        other.close()

        again, page = log_in(browser, server.url, "ana", "pw-ana")  # ana, another browser
        open_history(page)
        page.locator("#conversations input").click()
        options = page.locator("[data-testid=dropdown-option]")
        options.first.wait_for(timeout=WAIT_MS)
        assert options.first.inner_text().strip() == "Where is the museum?"
        again.close()
    store.close()
