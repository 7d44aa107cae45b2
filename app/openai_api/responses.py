"""Answers in OpenAI's shapes: a chat completion, its streamed chunks (server-sent events).

Besides OpenAI's fields, answers carry a `lunettes` object: what was heard in the clips, the
timings, the replica that answered (on Ray Serve), and whether the adapter is trained (while it is not, answers about photos and speech
are not meaningful). `usage.prompt_tokens_details` splits the prompt by modality.
"""

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import nullcontext

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.openai_api.errors import ApiError, internal_error
from app.openai_api.spoken import AnswerVoice
from app.openai_api.worker import Generation
from app.sentences import Sentences
from fusion.model import Chunk, Heard, Stats

log = logging.getLogger(__name__)


class Answer:
    """Who asked for what: the fields every chunk and the completion repeat."""

    def __init__(self, model_name: str, adapter_trained: bool, replica: dict | None = None):
        self.id = f"chatcmpl-{secrets.token_hex(12)}"
        self.created = int(time.time())
        self.model_name = model_name
        self.adapter_trained = adapter_trained
        self.replica = replica  # {"id", "pid"} on Ray Serve (app/replicas); None: one process

    def head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model_name}

    def completion(
        self, text: str, heard: list[str], stats: Stats, audio: dict | None = None
    ) -> dict:
        message = {"role": "assistant", "content": text, "refusal": None}
        if audio is not None:  # as OpenAI's: the words are the audio's transcript
            message |= {"content": None, "audio": audio}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": stats.finish_reason,
        }
        return {
            **self.head("chat.completion"),
            "choices": [choice],
            "usage": usage(stats),
            "lunettes": self.extension(heard, stats),
        }

    def chunk(self, delta: dict, finish_reason: str | None = None, **extra) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self.head("chat.completion.chunk"), "choices": [choice], **extra}

    def usage_chunk(self, stats: Stats) -> dict:
        """As OpenAI's with include_usage: one more chunk, with no choices."""
        return {**self.head("chat.completion.chunk"), "choices": [], "usage": usage(stats)}

    def extension(self, heard: list[str], stats: Stats | None = None) -> dict:
        extension = {"heard": heard, "adapter_trained": self.adapter_trained}
        if self.replica is not None:
            extension["replica"] = self.replica
        if stats is not None:
            extension |= {
                "read_as": stats.read_as,  # the words the LM was given for the last turn's clip
                "timings_ms": stats.timings_ms,
                "tokens_per_s": stats.tokens_per_s,
            }
        return extension


def usage(stats: Stats) -> dict:
    prompt = stats.prompt_tokens
    total_prompt = sum(prompt.values())
    return {
        "prompt_tokens": total_prompt,
        "completion_tokens": stats.new_tokens,
        "total_tokens": total_prompt + stats.new_tokens,
        "prompt_tokens_details": {
            "text_tokens": prompt.get("text", 0),
            "image_tokens": prompt.get("image", 0),
            "audio_tokens": prompt.get("audio", 0),
            "cached_tokens": 0,
        },
    }


async def collect(generation: Generation) -> tuple[str, list[str], Stats]:
    """Run the answer to its end -> (text, transcripts heard, stats)."""
    pieces, heard, stats = [], [], None
    try:
        while (event := await generation.next()) is not None:
            if isinstance(event, Heard):
                heard.append(event.text)
            elif isinstance(event, Chunk):
                pieces.append(event.text)
            elif isinstance(event, Stats):
                stats = event
    finally:
        generation.close()
    if stats is None:  # the model always ends with Stats; this would be a bug upstream
        raise internal_error()
    return "".join(pieces), heard, stats


async def events(
    generation: Generation, answer: Answer, include_usage: bool, voice: AnswerVoice | None = None
) -> AsyncIterator[bytes]:
    """The answer as server-sent events in OpenAI's chunk format, ending with [DONE]; with a
    voice, its text as audio transcript pieces and each sentence spoken as soon as it ends.

    A failure after the stream began is sent as an `{"error": ...}` event (what OpenAI's
    clients raise on); the generation is closed in every case, a client that left included.
    """
    extra = {"usage": None} if include_usage else {}
    sentences = Sentences()
    model, first = generation.worker.model, True

    async def spoken(text: str) -> bytes:
        nonlocal first  # the answer's first sound: no answer decodes beside its making
        held, first = model.decoding_held() if first else nullcontext(), False
        data = await anyio.to_thread.run_sync(_within, held, voice.spoken, text)
        return (
            sse(answer.chunk({"audio": {"id": voice.id, "data": data}}, **extra)) if data else b""
        )

    try:
        yield sse(
            answer.chunk({"role": "assistant", "content": "" if voice is None else None}, **extra)
        )
        heard = []
        while (event := await generation.next()) is not None:
            if isinstance(event, Heard):
                heard.append(event.text)
                yield sse(answer.chunk({}, **extra, lunettes=answer.extension([event.text])))
            elif isinstance(event, Chunk) and event.text and voice is None:
                yield sse(answer.chunk({"content": event.text}, **extra))
            elif isinstance(event, Chunk) and event.text:
                transcript = {"audio": {"id": voice.id, "transcript": event.text}}
                yield sse(answer.chunk(transcript, **extra))
                for sentence in sentences.push(event.text):
                    yield await spoken(sentence)
            elif isinstance(event, Stats):
                if voice is not None and (rest := sentences.end()):
                    yield await spoken(rest)
                final = answer.chunk(
                    {}, event.finish_reason, **extra, lunettes=answer.extension(heard, event)
                )
                yield sse(final)
                if include_usage:
                    yield sse(answer.usage_chunk(event))
        yield b"data: [DONE]\n\n"
    except ApiError as error:
        yield sse(error.body())
    except Exception:
        log.exception("streaming an answer failed")
        yield sse(internal_error().body())
    finally:
        generation.close()


def _within(context, function: Callable, *args):
    with context:
        return function(*args)


def sse(payload: dict) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


class EventStream(StreamingResponse):
    """Server-sent events whose generator is always closed, whether the client stayed or left."""

    def __init__(self, body: AsyncIterator[bytes], on_close: Callable[[], None]):
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(body, media_type="text/event-stream", headers=headers)
        self.on_close = on_close  # also when the stream was cancelled before it began

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()
            self.on_close()
