"""Spoken answers in chat completions (modalities text + audio), streamed or not."""

import base64
import io
import json

import pytest
import soundfile
from fastapi.testclient import TestClient

from tests.api_support import api_app, chat


@pytest.fixture(scope="module")
def client(model):
    with TestClient(api_app(model)) as client:
        yield client


def spoken(fmt: str, **fields) -> dict:
    return chat("Tell me a story", max_tokens=24, modalities=["text", "audio"],
                audio={"voice": "alloy", "format": fmt}, **fields)  # fmt: skip


def test_the_answer_comes_spoken_with_its_transcript(client):
    text = client.post("/v1/chat/completions", json=chat("Tell me a story", max_tokens=24))
    written = text.json()["choices"][0]["message"]["content"]
    response = client.post("/v1/chat/completions", json=spoken("wav"))
    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    assert message["content"] is None and message["audio"]["transcript"] == written
    assert message["audio"]["id"].startswith("audio_") and message["audio"]["expires_at"] > 0
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(message["audio"]["data"])))
    assert rate > 8000 and len(samples) / rate > 0.3


def test_a_streamed_answer_is_spoken_sentence_by_sentence(client):
    with client.stream(
        "POST", "/v1/chat/completions", json=spoken("pcm16", stream=True)
    ) as response:
        assert response.status_code == 200
        chunks = [json.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: {")]  # fmt: skip
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    transcript = "".join(d["audio"].get("transcript", "") for d in deltas if "audio" in d)
    audio = [base64.b64decode(d["audio"]["data"]) for d in deltas if "data" in d.get("audio", {})]
    written = client.post("/v1/chat/completions", json=chat("Tell me a story", max_tokens=24))
    assert transcript == written.json()["choices"][0]["message"]["content"]
    assert audio and all(len(piece) % 2 == 0 for piece in audio)  # raw 16-bit samples
    assert sum(len(piece) for piece in audio) / 2 / 24_000 > 0.3
    assert not any("content" in d and d["content"] for d in deltas)  # the text is the transcript


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"modalities": ["text", "audio"]}, "missing_audio"),
        (
            {
                "modalities": ["text", "audio"],
                "audio": {"voice": "alloy", "format": "wav"},
                "stream": True,
            },
            "unsupported_value",
        ),
        (
            {"modalities": ["text", "audio"], "audio": {"voice": "robot", "format": "wav"}},
            "invalid_voice",
        ),
    ],
)
def test_inconsistent_audio_requests_are_refused(client, fields, code):
    response = client.post("/v1/chat/completions", json=chat("Hi", max_tokens=4, **fields))
    assert response.status_code == 400 and response.json()["error"]["code"] == code


def test_a_streamed_spoken_answer_pauses_its_decoding_at_its_first_piece(model, monkeypatch):
    """Streamed with audio, the answer's decoding pauses once its first piece is written, for
    that piece's voice (GenerationOptions.pause_after); written only, or spoken whole at the
    end (not streamed), it never pauses."""
    asked = []
    stream = model.stream
    monkeypatch.setattr(
        model, "stream", lambda m, options, **k: asked.append(options) or stream(m, options, **k)
    )
    with TestClient(api_app(model)) as client:
        for body in (spoken("pcm16", stream=True), spoken("wav"), chat("Hi", stream=True)):
            assert client.post("/v1/chat/completions", json=body).status_code == 200
    voiced, whole, written = (options.pause_after for options in asked)
    assert voiced("The capital of France is") and not voiced("The capital of France")
    assert whole is None and written is None
