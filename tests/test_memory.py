"""Remember and recall: what counts as a request, the search over moments (SQLite FTS5 and
PostgreSQL tsvector), ownership, forgetting, retention, export, and the conversation that the
model reads for a recall."""

import json
from datetime import timedelta

import pytest

from app import memory
from app.store import conversations as talk
from app.store import moments, privacy
from app.store.schema import Conversation, Moment, now
from fusion.conversation import Message


@pytest.mark.parametrize(
    ("said", "note"),
    [
        ("Remember that my car is on level 3, row F.", "my car is on level 3, row F"),
        ("remember this", ""),
        ("Please remember: the wifi password is tulip42", "the wifi password is tulip42"),
        ("Don't forget the keys are under the mat", "the keys are under the mat"),
        ("Hey, remember where I parked", "where I parked"),
    ],
)
def test_a_request_to_remember_is_recognised_with_its_note(said, note):
    assert memory.remember_request(said) == memory.Remember(note)


@pytest.mark.parametrize(
    "said",
    [
        "Do you remember where I parked?",
        "Remember where I parked?",
        "What is a haiku?",
        "",
        "I remember it",
    ],
)
def test_questions_and_other_messages_are_not_requests_to_remember(said):
    assert memory.remember_request(said) is None


def test_search_finds_a_moment_by_other_forms_of_its_words(store):
    parked = moments.remember(store, "browser:a", "I parked the car on level 3")
    moments.remember(store, "browser:a", "the wifi password is tulip42")
    [found] = moments.search(store, "browser:a", "Where is my parking spot for the car?")
    assert found.id == parked and found.note == "I parked the car on level 3"
    assert moments.search(store, "browser:a", "what is the meaning of life?") == []
    assert moments.search(store, "browser:a", "where did I ?") == []  # no content words


def test_search_orders_by_relevance_and_keeps_owners_apart(store):
    moments.remember(store, "browser:a", "the umbrella is in the car")
    best = moments.remember(store, "browser:a", "my blue umbrella is in the hall cupboard")
    moments.remember(store, "browser:b", "my blue umbrella is at work")
    found = moments.search(store, "browser:a", "where is my blue umbrella?")
    assert found[0].id == best
    assert all("work" not in m.note for m in found)
    assert [m.note for m in moments.search(store, "browser:b", "blue umbrella")] == [
        "my blue umbrella is at work"
    ]


def test_a_moment_keeps_its_photo_and_forgetting_it_removes_both(store, tmp_path):
    from PIL import Image

    path = tmp_path / "level.jpg"
    Image.new("RGB", (16, 16)).save(path)
    moment_id = moments.remember(
        store, "local", "parked here", [path], seen="a car", text_read="LEVEL 3"
    )
    [found] = moments.listed(store, "local")
    [kept] = found.photos
    assert (found.seen, found.text_read) == ("a car", "LEVEL 3") and kept.is_file()
    assert not moments.forget(store, "browser:x", moment_id)  # not theirs
    assert moments.forget(store, "local", moment_id)
    assert moments.listed(store, "local") == [] and not kept.exists()
    assert moments.search(store, "local", "parked") == []  # gone from the search index too


def test_nothing_to_remember_is_an_error(store):
    with pytest.raises(ValueError, match="nothing to remember"):
        moments.remember(store, "local", "  ")


def test_forget_everything_removes_only_the_owners_rows(store):
    moments.remember(store, "user:ana", "ana's note")
    talk.start(store, "user:ana", "ana's chat")
    moments.remember(store, "user:bo", "bo's note")
    assert privacy.forget_everything(store, "user:ana") == (1, 1)
    assert moments.listed(store, "user:ana") == [] and talk.listed(store, "user:ana") == []
    assert [m.note for m in moments.listed(store, "user:bo")] == ["bo's note"]


def test_retention_forgets_what_is_older_than_the_setting(store):
    old = moments.remember(store, "local", "old note")
    moments.remember(store, "local", "new note")
    old_chat = talk.start(store, "local", "old chat")
    with store.session() as session:
        session.get(Moment, old).created_at = now() - timedelta(days=40)
        session.get(Conversation, old_chat).updated_at = now() - timedelta(days=40)
    assert privacy.forget_older_than(store, 30) == 2
    assert [m.note for m in moments.listed(store, "local")] == ["new note"]
    assert talk.listed(store, "local") == []
    with pytest.raises(ValueError, match="positive"):
        privacy.forget_older_than(store, 0)


def test_export_everything_holds_conversations_and_moments(store):
    moments.remember(store, "local", "the spare key is under the pot")
    cid = talk.start(store, "local", "hello")
    talk.save_answer(store, "local", talk.add_turn(store, "local", cid, "hello"), "Hi!", "done")
    exported = json.loads(privacy.export_everything(store, "local"))
    assert exported["moments"][0]["note"] == "the spare key is under the pot"
    assert exported["conversations"][0]["turns"][0]["answer"] == "Hi!"
    assert json.loads(privacy.export_everything(store, "browser:other")) == {
        "conversations": [],
        "moments": [],
    }


def test_a_recall_question_reads_the_moments_it_recalls(store, model):
    moments.remember(store, "local", "my car is on level 3, row F")
    moments.remember(store, "local", "the dentist is on Thursday")
    asked = [
        Message("user", "Hello"),
        Message("assistant", "Hi."),
        Message("user", "Where did I park my car?"),
    ]
    messages, found = memory.with_moments(store, "local", model, asked)
    assert [m.note for m in found] == ["my car is on level 3, row F"]
    assert messages[:2] == asked[:2]
    question = messages[-1].text
    assert "you noted: your car is on level 3, row F." in question
    assert question.endswith("Question: Where did I park my car?")
    assert "dentist" not in question


def test_general_questions_are_not_answered_from_moments(store, model):
    moments.remember(store, "local", "we drove through France last summer")
    asked = [Message("user", "What is the capital of France?")]
    assert memory.with_moments(store, "local", model, asked) == (asked, [])
    statement = [Message("user", "I like France")]  # not a question
    assert memory.with_moments(store, "local", model, statement) == (statement, [])


def test_a_question_not_in_the_first_person_recalls_a_close_moment(store, model):
    moments.remember(store, "local", "Anna's birthday is on the ninth of May")
    _, found = memory.with_moments(
        store, "local", model, [Message("user", "When is Anna's birthday?")]
    )
    assert [m.note for m in found] == ["Anna's birthday is on the ninth of May"]


def test_a_spoken_question_prepared_for_its_session_is_not_encoded_again(store, model):
    """The web app prepares a hands-free question under its session's media owner
    (app/web_partial.py): deciding whether it remembers or recalls finds it there."""
    from fusion.conversation import user
    from tests.tiny import said

    clip = said("Where did I park my car?")
    model.encode_media([user("", [], clip)], "web:session")
    hits = model.media_cache.hits
    asked = [user("", [], clip)]  # the question as asked: a new message, the same samples
    memory.remember_or_recall(store, "local", model, asked, "", media_owner="web:session")
    assert model.media_cache.hits == hits + 1 and asked[-1].speech.transcript is not None


def test_when_a_moment_was_kept_is_said_as_a_person_says_it():
    from datetime import UTC, datetime

    today = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    local = lambda days: (today - timedelta(days=days)).replace(tzinfo=None)
    assert memory.when(local(0), today).startswith("today at ")
    assert memory.when(local(1), today).startswith("yesterday at ")
    assert memory.when(local(3), today).startswith("on ")
    assert "2026" in memory.when(local(30), today)
