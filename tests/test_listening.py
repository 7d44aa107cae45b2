"""Hands-free listening's WebSocket (app/listening.py): the page's microphone in, what was
heard out; a key that names no session, and what is not microphone audio, are refused."""

import gc
import json

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.listening import CLOSE_BAD_INPUT, CLOSE_UNKNOWN, Listeners, install_listening
from app.web_session import WebSession
from encoders.audio_io import resample
from tests.tiny import said

RATE = 48_000  # a browser's own rate (Firefox sends it; Chromium resamples to 16 kHz)


@pytest.fixture
def served():
    server, listeners = FastAPI(), Listeners()
    install_listening(server, listeners)
    return TestClient(server), listeners


def microphone(text: str) -> list[bytes]:
    """`text` said, then 1.5 s of quiet, as the page sends it: 64 ms of int16 per message."""
    audio = np.concatenate([said(text) * 0.5, np.zeros(24_000, np.float32)])
    pcm = (resample(audio, 16_000, RATE) * 32767).astype("<i2")
    step = round(RATE * 0.064)
    return [pcm[i : i + step].tobytes() for i in range(0, len(pcm), step)]


def test_a_question_said_into_the_socket_is_heard_and_announced(served, tmp_path):
    client, listeners = served
    session = WebSession(root=tmp_path)
    with client.websocket_connect(f"/listen/{listeners.key_for(session)}") as socket:
        socket.send_text(json.dumps({"rate": RATE}))
        for chunk in microphone("What is this?"):
            socket.send_bytes(chunk)
        assert socket.receive_json() == {"kind": "asked"}
    # asked before the page is told: the page's event answers it at once
    assert session.heard is None and len(session.turns) == 1
    turn = session.turns[0]
    assert turn.state == "waiting" and turn.endpointing_ms > 0
    heard = turn.question.speech.waveform
    assert 0.5 <= len(heard) / 16_000 < 2.5
    assert turn.audio_file is not None and turn.audio_file.is_file()  # kept, nothing lost


def test_a_key_that_names_no_session_is_refused(served, tmp_path):
    client, listeners = served
    key = listeners.key_for(WebSession(root=tmp_path))  # its session is gone meanwhile
    gc.collect()
    for wrong in (key, "guessed"):
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect(f"/listen/{wrong}") as socket,
        ):
            socket.receive_text()
        assert refused.value.code == CLOSE_UNKNOWN


@pytest.mark.parametrize(
    ("hello", "chunk"),
    [
        ("hello", b""),  # no rate
        (json.dumps({"rate": 1_000_000}), b""),  # no microphone has that rate
        (json.dumps({"rate": "fast"}), b""),
        (json.dumps({"rate": RATE}), b"\x00\x01\x02"),  # half a sample
        (json.dumps({"rate": RATE}), bytes(2 * RATE + 2)),  # over a second in one message
    ],
)
def test_what_is_not_microphone_audio_is_refused_with_the_reason(served, tmp_path, hello, chunk):
    client, listeners = served
    session = WebSession(root=tmp_path)
    key = listeners.key_for(session)
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(f"/listen/{key}") as socket,
    ):
        socket.send_text(hello)
        socket.send_bytes(chunk)
        socket.receive_text()
    assert refused.value.code == CLOSE_BAD_INPUT and refused.value.reason


def test_a_failure_of_the_server_is_not_blamed_on_the_microphone(served, tmp_path, caplog):
    """Only what the page sent is refused as bad input (4400); an error inside the server,
    even a ValueError, closes with 1011 and is logged."""
    client, listeners = served
    session = WebSession(root=tmp_path)

    def broken(rate, pcm):
        raise ValueError("an internal shape mismatch")

    session.hear = broken
    key = listeners.key_for(session)
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(f"/listen/{key}") as socket,
    ):
        socket.send_text(json.dumps({"rate": RATE}))
        socket.send_bytes(bytes(2 * 1024))
        socket.receive_text()
    assert closed.value.code == 1011
    assert "hands-free listening failed" in caplog.text
