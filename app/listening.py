"""Hands-free listening: the page's microphone over a WebSocket, and what it hears.

The page (static/listener.js) opens /listen/{key}, where key is its session's unguessable
`listen_key`, given only to that page (at its first Record, web.py); it sends the microphone as binary
messages of 16-bit little-endian mono PCM, after a first text message {"rate": Hz}. The
server answers with JSON text messages:
- {"kind": "asked"}: a question ended, and is the session's newest turn already (with the
  camera frame, WebSession.ask_heard); the page asks Gradio to answer it and say the answer
  (the hands-free component's submit and play events, which start them at once). The question was
  added by a Gradio event of its own before, whose end the page had to see before it asked
  for the answer: 200-250 ms more from the end of the pause to the answer's start, measured
  on this machine with Chromium (2026-12-03);
- {"kind": "heard", "text": ...}: what Whisper heard so far of the question being spoken;
- the voice player's hold / go_on / stop (app/voice_player.py), straight to the page's
  player, when the wearer speaks over the answer (barge-in, web_session.py).

Why not Gradio's streaming gr.Audio, as before: each of its chunks was an upload and an
event, two HTTP requests whose handling held the GIL ~20 ms; at 4-10 chunks a second the
event loop held it ~45% of the time, and the answer being written meanwhile was decoded at
~6 tok/s instead of 12-15 (py-spy --gil, 2026-12-03). Here a chunk is one WebSocket message
and a few Silero frames.
"""

import asyncio
import json
import logging
import weakref

import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from app import voice_player
from app.web_partial import PartialTranscripts
from app.web_session import WebSession
from encoders.errors import InputError

MAX_RATE = 192_000  # Hz: the highest microphone rate accepted
MAX_MESSAGE_S = 1.0  # longest chunk accepted in one message, in seconds of audio
CLOSE_UNKNOWN = 4404  # WebSocket close code: no session has that key (the server restarted)
CLOSE_BAD_INPUT = 4400  # ... the page sent what is not microphone audio
ASKED = json.dumps({"kind": "asked"})
log = logging.getLogger(__name__)


class Listeners:
    """The sessions that may listen, by key. Weak: a session deleted with its tab is gone."""

    def __init__(self, partials: PartialTranscripts | None = None):
        self.partials = partials  # partial transcripts while a question is spoken (or none)
        self._sessions: weakref.WeakValueDictionary[str, WebSession] = weakref.WeakValueDictionary()

    def key_for(self, session: WebSession) -> str:
        """The session may listen from now on -> the key its page connects with."""
        self._sessions[session.listen_key] = session
        return session.listen_key

    def get(self, key: str) -> WebSession | None:
        return self._sessions.get(key)


def hear(
    session: WebSession, rate: int, pcm: np.ndarray, partials: PartialTranscripts | None = None
) -> list[str]:
    """A microphone chunk (`pcm` [S] int16 at `rate`) -> the messages for the page, in order."""
    interruptions, held = session.interruptions, session.voice_held
    ended = session.hear(rate, pcm)
    if partials is not None:
        partials.maybe_start(session)
    messages = []
    if session.interruptions != interruptions:
        messages.append(voice_player.stop(session))
    elif session.voice_held != held:
        messages.append(
            voice_player.hold(session) if session.voice_held else voice_player.go_on(session)
        )
    if ended:
        messages.append(ASKED)  # the question is asked (ask_heard) before the page is told
    partial = session.partial
    hearing = session.listener.in_question and partial and partial.utterance == session.utterances
    if hearing and partial.text and partial.text != session.partial_shown:
        session.partial_shown = partial.text
        messages.append(json.dumps({"kind": "heard", "text": partial.text}))
    return messages


def install_listening(server: FastAPI, listeners: Listeners) -> None:
    """The /listen/{key} WebSocket on `server`."""

    @server.websocket("/listen/{key}")
    async def listen(websocket: WebSocket, key: str) -> None:
        session = listeners.get(key)
        if session is None:
            await websocket.close(code=CLOSE_UNKNOWN, reason="no such session: reload the page")
            return
        await websocket.accept()
        session.listener.reset()  # a new recording: nothing of an earlier one goes on
        try:
            rate = _rate(await websocket.receive_text())
            while True:
                pcm = _pcm(await websocket.receive_bytes(), rate)
                for message in hear(session, rate, pcm, listeners.partials):
                    if message == ASKED:  # its photo and clip are saved: not on the event loop
                        await asyncio.to_thread(session.ask_heard)
                    await websocket.send_text(message)
        except WebSocketDisconnect:
            return
        except InputError as error:  # what the page sent; the server's own errors are logged
            await websocket.close(code=CLOSE_BAD_INPUT, reason=str(error)[:120])
        except Exception:
            log.exception("hands-free listening failed")
            await websocket.close(code=1011, reason="listening failed (logged)")


def _rate(hello: str) -> int:
    """The page's first message, {"rate": Hz} -> the rate, checked."""
    try:
        rate = json.loads(hello)["rate"]
    except (ValueError, KeyError, TypeError):
        raise InputError('the first message must be {"rate": <samples per second>}') from None
    if not isinstance(rate, int) or not 8_000 <= rate <= MAX_RATE:
        raise InputError(f"the microphone's rate must be 8000-{MAX_RATE} Hz, got {rate!r}")
    return rate


def _pcm(data: bytes, rate: int) -> np.ndarray:
    """A binary message -> its samples [S] int16, checked."""
    if len(data) % 2 or len(data) > 2 * rate * MAX_MESSAGE_S:
        raise InputError("a microphone chunk is whole 16-bit samples, at most 1 s of them")
    return np.frombuffer(data, "<i2")
