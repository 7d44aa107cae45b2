"""What the server tells the page's voice player: one JSON message per update.

The spoken answer plays in the page's own Web Audio player (static/voice_player.js, the
script of a hidden gr.HTML in web.py), not in a streaming gr.Audio: Gradio streams audio to
its player as ffmpeg-encoded HLS segments, which started playing 1.3-3.2 s after the server
had made the voice (gradio-app/gradio#8185). Here each spoken piece reaches the page in the
same event stream as the chat, as 16-bit PCM, and is scheduled at once, gapless after the
piece before it.

Messages, each with `seq`, the session's count of messages so far: the page drops a piece
older than the last `stop` (it was made before the stop, and arrived after it), and a
`hold`/`go_on` older than the last one it obeyed.
- play: a piece of the answer's voice (`rate`, `pcm`: base64 of int16 little-endian samples);
- stop: silence now, and forget what is queued (Stop, Clear, Stop speaking, barge-in);
- hold: pause where it is (the wearer began to speak over it: it may be a barge-in, or a
  backchannel such as "mm-hm");
- go_on: play on from where it paused (it was a backchannel).
Nothing here knows about Gradio.
"""

import base64
import json

import numpy as np

from app.web_session import WebSession


def play(session: WebSession, samples: np.ndarray, rate: int) -> str:
    """samples [S] float32 in [-1, 1] at `rate` -> the message that plays them after the rest."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    return _message(session, "play", rate=int(rate), pcm=base64.b64encode(pcm).decode("ascii"))


def stop(session: WebSession) -> str:
    return _message(session, "stop")


def hold(session: WebSession) -> str:
    return _message(session, "hold")


def go_on(session: WebSession) -> str:
    return _message(session, "go_on")


def _message(session: WebSession, kind: str, **fields) -> str:
    return json.dumps({"seq": next(session.voice_messages), "kind": kind, **fields})
