"""Spoken answers in chat completions, as OpenAI's: `modalities: ["text", "audio"]` with
`audio: {voice, format}`.

Not streamed: `message.audio` holds the whole answer spoken (`data`, base64 of `format`) and
its `transcript`, and `content` is null, as OpenAI's. Streamed (format pcm16 only, as
OpenAI's): the text comes as `delta.audio.transcript` pieces, and each sentence (the first
clause already, app/sentences.py) as `delta.audio.data`, raw 16-bit 24 kHz mono, as soon as it
is spoken, while the answer goes on being written.
"""

import base64
import secrets
import time
from dataclasses import dataclass, field

from app import speech_out
from app.openai_api.errors import ApiError
from app.openai_api.schema import ChatCompletionRequest
from app.openai_api.speech import encode, engine_of

AUDIO_LIFETIME_S = 3600  # `expires_at`: nothing is kept server-side; OpenAI's field, for clients


@dataclass
class AnswerVoice:
    engine: str
    format: str  # encode()'s name: wav, mp3, flac, opus or pcm
    id: str = field(default_factory=lambda: f"audio_{secrets.token_hex(12)}")

    def spoken(self, text: str) -> str:
        """text -> base64 of it spoken in `format` ("" when there is nothing to say)."""
        try:
            samples, rate = speech_out.speak(text, self.engine)
        except speech_out.SpeechError as error:
            raise ApiError(500, str(error), "speech_failed") from None
        return base64.b64encode(encode(samples, rate, self.format)).decode() if len(samples) else ""

    def message_audio(self, text: str) -> dict:
        return {"id": self.id, "data": self.spoken(text), "transcript": text,
                "expires_at": int(time.time()) + AUDIO_LIFETIME_S}  # fmt: skip


def answer_voice(body: ChatCompletionRequest) -> AnswerVoice | None:
    """The voice the answer is asked in, or None for text only (ApiError when inconsistent)."""
    modalities = body.modalities or ["text"]
    if "audio" not in modalities:
        return None
    if body.audio is None:
        raise ApiError(400, 'modalities has "audio": say which voice and format in `audio`, '
                       'e.g. {"voice": "alloy", "format": "wav"}', "missing_audio", "audio")  # fmt: skip
    if body.stream and body.audio.format != "pcm16":
        raise ApiError(400, "a streamed spoken answer comes as pcm16 only, as OpenAI's",
                       "unsupported_value", "audio.format")  # fmt: skip
    engine = engine_of(body.audio.voice)
    return AnswerVoice(engine, "pcm" if body.audio.format == "pcm16" else body.audio.format)
