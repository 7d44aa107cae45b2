"""Memory through the API ("memory": true, Lunettes' extension) on the tiny model and a
SQLite store: a request to remember keeps a moment for the key and user that sent it, streamed
or not; a recall question reaches the model with the moment; others never see it."""

import json

import pytest
from fastapi.testclient import TestClient

from app.store import moments
from app.store.database import open_store
from tests.api_support import api_app, chat, image_part, png_data_url, text_part

KEPT = "Okay, I'll remember: your bike is by the library."


@pytest.fixture
def store(tmp_path):
    store = open_store(None, tmp_path / "data")
    yield store
    store.close()


@pytest.fixture
def client(model, store):
    with TestClient(api_app(model, store)) as client:
        yield client


def owners(store) -> dict[str, list[str]]:
    from sqlalchemy import text

    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT owner, note FROM moments ORDER BY id")).all()
    kept: dict[str, list[str]] = {}
    for owner, note in rows:
        kept.setdefault(owner, []).append(note)
    return kept


def test_remember_keeps_a_moment_for_the_key_and_user(client, store):
    asked = chat(
        text_part("Remember that my bike is by the library"), image_part(png_data_url()),
        memory=True, user="ana",
    )  # fmt: skip
    answer = client.post("/v1/chat/completions", json=asked).json()
    assert answer["choices"][0]["message"]["content"] == KEPT
    assert answer["choices"][0]["finish_reason"] == "stop"
    [(owner, notes)] = owners(store).items()
    assert (
        owner.startswith("api:")
        and owner.endswith(":ana")
        and notes == ["my bike is by the library"]
    )
    [moment] = moments.listed(store, owner)
    assert len(moment.photos) == 1 and moment.photos[0].is_file()  # the photo is kept too


def test_remember_streams_the_kept_answer(client, store):
    asked = chat("Remember that the gate code is 4711", memory=True, stream=True)
    response = client.post("/v1/chat/completions", json=asked)
    pieces = [
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in response.text.splitlines()
        if line.startswith("data: {") and json.loads(line[6:])["choices"]
    ]
    assert "".join(pieces) == "Okay, I'll remember: the gate code is 4711."
    assert response.text.rstrip().endswith("data: [DONE]")


def test_without_memory_nothing_is_kept(client, store):
    client.post("/v1/chat/completions", json=chat("Remember that my bike is by the library"))
    assert owners(store) == {}


def test_a_recall_reaches_the_model_with_the_moment_of_that_user_only(
    client, store, model, monkeypatch
):
    client.post(
        "/v1/chat/completions",
        json=chat("Remember that my bike is by the library", memory=True, user="ana"),
    )
    asked = []
    original = model.stream

    def recorded(messages, options=None, owner=""):
        asked.append(messages[-1].text)
        return original(messages, options, owner)

    monkeypatch.setattr(model, "stream", recorded)
    question = "Where did I leave my bike?"
    assert (
        client.post(
            "/v1/chat/completions", json=chat(question, memory=True, user="ana")
        ).status_code
        == 200
    )
    assert (
        client.post("/v1/chat/completions", json=chat(question, memory=True, user="bo")).status_code
        == 200
    )
    assert "you noted: your bike is by the library." in asked[0]
    assert asked[1] == question  # another user of the key: no moment of ana's


def test_memory_on_a_server_without_a_store_is_a_clear_error(model):
    with TestClient(api_app(model)) as client:
        response = client.post("/v1/chat/completions", json=chat("Remember this", memory=True))
    assert response.status_code == 400
    assert "memory is off" in response.json()["error"]["message"]
