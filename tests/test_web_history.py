"""The web app's history on the tiny random model and a real SQLite store: every turn kept as
it is asked and answered, a conversation resumed in a new tab, kept only for its owner,
"remember ..." and recall through the session, and a server killed mid-answer."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.store import conversations as talk
from app.store import moments
from app.store.database import open_store
from app.web_history import History, owner_of
from app.web_session import WebSession, answer_next
from fusion.generate import GenerationOptions
from tests.tiny import photo

SHORT = GenerationOptions(max_new_tokens=6)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    store = open_store(None, tmp_path / "data")
    yield store
    store.close()


def tab(store, tmp_path, owner="browser:" + "a" * 32) -> WebSession:
    session = WebSession(root=tmp_path)
    session.history = History(store, owner)
    return session


def test_each_turn_is_kept_as_it_is_asked_and_answered(model, store, tmp_path):
    session = tab(store, tmp_path)
    session.ask("What is this?", [(photo(), "your photo")])
    [stored] = talk.turns(store, session.history.owner, session.history.conversation_id)
    assert (stored.question, stored.answer, stored.state) == ("What is this?", "", "waiting")
    updates = list(answer_next(model, session, SHORT))
    turn = updates[-1]
    [stored] = talk.turns(store, session.history.owner, session.history.conversation_id)
    assert stored.answer == turn.answer and turn.answer
    assert stored.state == "done" and stored.timings_ms["total"] > 0
    assert len(stored.photos) == 1 and stored.photos[0][0].is_file()
    assert [s.title for s in talk.listed(store, session.history.owner)] == ["What is this?"]


def test_a_new_tab_resumes_the_conversation_and_can_follow_up(model, store, tmp_path):
    first = tab(store, tmp_path)
    first.ask("What is this?", [(photo(), "your photo")])
    list(answer_next(model, first, SHORT))
    conversation = first.history.conversation_id

    second = tab(store, tmp_path)  # the page was reloaded, or the server restarted
    second.history.resume(second, conversation)
    [turn] = second.turns
    assert (turn.text, turn.answer, turn.state) == ("What is this?", first.turns[0].answer, "done")
    assert turn.photo_files and turn.photo_files[0].is_file()  # shown from the tab's own folder
    second.ask("And what colour is it?")
    list(answer_next(model, second, SHORT))
    messages = second.conversation(second.turns[-1])
    assert (
        messages[0].photos and messages[1].text == first.turns[0].answer.strip()
    )  # the earlier photo is read again
    assert len(talk.turns(store, first.history.owner, conversation)) == 2


def test_another_browser_cannot_resume_it(model, store, tmp_path):
    mine = tab(store, tmp_path)
    mine.ask("private question")
    theirs = tab(store, tmp_path, owner="browser:" + "b" * 32)
    with pytest.raises(talk.NotFound):
        theirs.history.resume(theirs, mine.history.conversation_id)
    assert theirs.history.listed() == [] and theirs.turns == []


def test_clear_starts_a_new_stored_conversation(model, store, tmp_path):
    session = tab(store, tmp_path)
    session.ask("first")
    list(answer_next(model, session, SHORT))
    session.clear()
    session.ask("second")
    assert [title for title, _ in session.history.listed()] == ["second", "first"]


def test_remember_keeps_a_moment_with_the_photo_and_says_so(model, store, tmp_path):
    session = tab(store, tmp_path)
    session.ask("Remember that my bike is by the library", [(photo(), "camera frame")])
    turn = list(answer_next(model, session, SHORT))[-1]
    assert turn.state == "done"
    assert turn.answer == "Okay, I'll remember: your bike is by the library."
    [moment] = moments.listed(store, session.history.owner)
    assert moment.note == "my bike is by the library" and len(moment.photos) == 1
    assert moments.listed(store, "browser:" + "b" * 32) == []


def test_a_recall_question_reaches_the_model_with_the_moment(model, store, tmp_path, monkeypatch):
    session = tab(store, tmp_path)
    moments.remember(store, session.history.owner, "my bike is by the library")
    asked = []
    original = model.stream

    def recorded(messages, options=None, owner=""):
        asked.append((messages, options))
        return original(messages, options, owner)

    monkeypatch.setattr(model, "stream", recorded)
    session.ask("Where did I leave my bike?")
    list(answer_next(model, session, SHORT))
    [(messages, options)] = asked
    assert "you noted: your bike is by the library." in messages[-1].text
    assert "\n\n" in options.stop  # a recall is one paragraph


def test_browser_ids_become_owners_only_when_well_formed():
    assert owner_of(None, "a" * 32) == "browser:" + "a" * 32
    assert owner_of("ana", "a" * 32) == "user:ana"
    assert owner_of(None, None) is None
    assert owner_of(None, "../../etc") is None


def test_a_server_killed_mid_answer_keeps_what_was_shown(tmp_path):
    """The answering process is SIGKILLed after several pieces were shown: the stored answer
    holds all of them, and the conversation reopens with that turn marked cut off."""
    owner = "browser:" + "c" * 32
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_answer", str(tmp_path / "data"), owner],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    shown = ""
    for _ in range(8):
        shown = json.loads(process.stdout.readline())["shown"]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert shown

    store = open_store(None, tmp_path / "data")
    [summary] = talk.listed(store, owner)
    session = WebSession(root=tmp_path)
    session.history = History(store, owner)
    session.history.resume(session, summary.id)
    [turn] = session.turns
    assert turn.answer.startswith(shown)  # nothing that was shown is lost
    assert turn.state == "cut off"
    assert talk.turns(store, owner, summary.id)[0].state == "cut off"
    store.close()


def test_a_full_disk_is_said_and_the_answer_goes_on(model, store, tmp_path, monkeypatch):
    import errno

    from app.store import conversations as stored
    from app.store.files import StoreFull
    from app.web_format import chat_messages

    def full(*args):
        raise StoreFull(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stored, "keep_file", full)
    session = tab(store, tmp_path)
    session.ask("What is this?", [(photo(), "your photo")])
    turn = list(answer_next(model, session, SHORT))[-1]
    assert turn.state == "done" and turn.answer  # answered all the same
    assert turn.not_kept == "not kept in your history: No space left on device"
    assert "not kept in your history" in chat_messages(session.turns)[1]["content"]


def test_a_hands_free_question_asked_before_the_history_is_kept_when_answered(
    model, store, tmp_path
):
    """The listener asks a hands-free question (WebSession.ask_heard) with no request, so
    before the session knows whose history it is; the answer's event brings the request."""
    from types import SimpleNamespace

    from app import web_actions as act
    from app.web_history import BROWSER_COOKIE
    from tests.tiny import said

    session = WebSession(root=tmp_path, store=store)
    session.heard = said("What is this?")
    session.ask_heard()
    assert session.history is None
    request = SimpleNamespace(username=None, cookies={BROWSER_COOKIE: "b" * 32})
    list(act.respond(model, session, 6, 0.0, "", request=request))
    assert session.history is not None
    [stored] = talk.turns(store, session.history.owner, session.history.conversation_id)
    assert stored.state == "done" and stored.answer == session.turns[0].answer
    assert stored.audio is not None and stored.audio.is_file()  # the clip itself, kept
