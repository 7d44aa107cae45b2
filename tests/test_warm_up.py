"""The server's own first answers (app/warm_up.py): a spoken question and a photo, answered
under an owner of their own, leaving only the system prompt's keys and values kept."""

import logging

from app.warm_up import NEW_TOKENS, OWNER, warm_up
from fusion.model import Chunk, Stats
from fusion.prefix_cache import PUBLIC
from tests.tiny import tiny_model


def asked_of(model) -> list:
    """Record each conversation the model answers, and all it yielded, beside the real stream."""
    asked, stream = [], model.stream

    def recorded(messages, options=None, owner=""):
        events = list(stream(messages, options, owner))
        asked.append((messages, owner, events))
        yield from events

    model.stream = recorded
    return asked


def test_the_warm_up_asks_a_spoken_question_and_a_photo_as_its_own_owner():
    model = tiny_model()
    asked = asked_of(model)
    warm_up(model)
    assert [(bool(m[-1].speech), bool(m[-1].photos)) for m, _, _ in asked] == [
        (True, False),
        (False, True),
    ]
    assert {owner for _, owner, _ in asked} == {OWNER}
    spoken = asked[0][0][-1].speech
    assert spoken.features is not None and spoken.transcript is not None  # heard, as a person
    for _, _, events in asked:
        stats = events[-1]
        assert isinstance(stats, Stats) and 0 < stats.new_tokens <= NEW_TOKENS
        assert any(isinstance(e, Chunk) for e in events) or stats.finish_reason == "stop"
    owners = {kept.owner for kept in model.prefixes._kept.values()}
    assert OWNER not in owners and PUBLIC in owners  # the system prompt stays kept


def test_a_failing_warm_up_is_logged_and_the_server_goes_on(caplog):
    model = tiny_model()

    def broken(messages, options=None, owner=""):
        raise RuntimeError("no memory left")
        yield  # a generator, as the real one

    model.stream = broken
    with caplog.at_level(logging.ERROR, logger="app.warm_up"):
        warm_up(model)  # does not raise
    assert "warming the model up failed" in caplog.text
