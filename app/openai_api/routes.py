"""The /v1 routes: models, chat completions (streamed or not), transcriptions, speech.

Each request builds its own conversation from its own messages; the model is shared
read-only, its answers batched by the worker's scheduler. A client that disconnects while
its photos are decoded, while it waits or while its answer is computed stops that work.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated, Literal, TypeVar

import anyio
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE

from app.memory import recall_options
from app.openai_api import media
from app.openai_api import memory as api_memory
from app.openai_api.config import MODEL_ID, ApiConfig
from app.openai_api.errors import ApiError, ClientGone
from app.openai_api.memory import api_owner
from app.openai_api.messages import to_conversation
from app.openai_api.responses import Answer, EventStream, collect, events
from app.openai_api.schema import ChatCompletionRequest, SpeechRequest
from app.openai_api.speech import MEDIA_TYPES, SPEECH_MODELS, speech_bytes
from app.openai_api.spoken import answer_voice
from app.openai_api.worker import Generation, ModelWorker
from app.sentences import first_piece_written
from app.store.database import Store
from encoders.audio_io import SAMPLE_RATE
from fusion.generate import GenerationOptions
from fusion.model import LunettesModel

T = TypeVar("T")
TRANSCRIPTION_MODELS = ("whisper-1", MODEL_ID)  # and the audio encoder's own name
ROUTE_METHODS = {
    "/v1/chat/completions": "POST",
    "/v1/audio/transcriptions": "POST",
    "/v1/audio/speech": "POST",
    "/v1/audio/translations": "POST",
    "/v1/models": "GET",
}
MIN_TEMPERATURE = 1e-4  # below: greedy (logits / 1e-302 overflow to inf, and sampling fails)
CLIENT_GONE = 499  # nginx's status for a client that closed the connection; nobody reads it


def build_router(
    model: LunettesModel,
    worker: ModelWorker,
    config: ApiConfig,
    store: Store | None = None,
    replica: dict | None = None,
) -> APIRouter:
    """replica: {"id", "pid"} of the replica answering (app/replicas), named in each answer."""
    router = APIRouter(prefix="/v1")
    chat_models = (MODEL_ID, model.lm_name)
    created = int(time.time())

    def card(model_id: str) -> dict:
        return {
            "id": model_id, "object": "model", "created": created, "owned_by": "lunettes",
            "input_modalities": ["text", "image", "audio"], "output_modalities": ["text", "audio"],
            "lunettes": model.describe(),
        }  # fmt: skip

    @router.get("/models", summary="The model, with its input modalities")
    async def list_models() -> dict:
        return {"object": "list", "data": [card(name) for name in chat_models]}

    @router.get("/models/{model_id:path}", summary="One model")
    async def retrieve_model(model_id: str) -> dict:
        check_model(model_id, chat_models, param=None)
        return card(model_id)

    @router.post("/chat/completions", summary="Answer a conversation of text, photos and speech")
    async def chat_completions(request: Request, body: ChatCompletionRequest) -> Response:
        check_model(body.model, chat_models)
        options = generation_options(body, config)
        voice = answer_voice(body)
        if voice is not None and body.stream:  # its first piece is spoken once it is written
            options = replace(options, pause_after=first_piece_written)
        answer = Answer(body.model, model.describe()["adapter"]["trained"], replica)

        async def prepare():
            conversation = await to_conversation(body.messages, config, anyio.to_thread.run_sync)
            if not body.memory:
                return await worker.start(conversation, options)
            if store is None:
                raise ApiError(
                    400, "memory is off on this server: it keeps no store", "memory_off", "memory"
                )
            owner = api_owner(request, body.user)
            # in a thread, without the media lock: what it encodes takes the lock itself
            remembered = (worker.run, api_memory.apply, store, owner, model, conversation)
            conversation, kept, recalled = await anyio.to_thread.run_sync(*remembered)
            if kept is not None:
                return Generation(worker, api_memory.said(kept))
            return await worker.start(
                conversation, recall_options(options) if recalled else options
            )

        try:
            generation = await while_connected(request, prepare)
            if body.stream:
                include_usage = bool(body.stream_options and body.stream_options.include_usage)
                chunks = events(generation, answer, include_usage, voice)
                return EventStream(chunks, on_close=generation.close)
            text, heard, stats = await while_connected(request, lambda: collect(generation))
            audio = None
            if voice is not None:
                speak = lambda: anyio.to_thread.run_sync(voice.message_audio, text)
                audio = await while_connected(request, speak)
        except ClientGone:
            return Response(status_code=CLIENT_GONE)
        return JSONResponse(answer.completion(text, heard, stats, audio))

    async def heard(
        request: Request, file: UploadFile, model_name: str, language: str | None, task: str
    ) -> tuple:
        """A clip's Transcript in its turn -> (transcript, seconds), or ClientGone."""
        check_model(model_name, (*TRANSCRIPTION_MODELS, model.audio.name))
        language = check_language(language)
        data = await file.read()
        waveform = await anyio.to_thread.run_sync(
            media.read_clip, data, "file", config, file.filename or "upload"
        )

        def transcribe():
            return model.transcriber(model.audio.encode(waveform), language, task)

        transcript = await while_connected(request, lambda: worker.call(transcribe))
        return transcript, round(waveform.shape[0] / SAMPLE_RATE, 2)

    def transcript_response(transcript, seconds: float, response_format: str, task: str):
        if response_format == "text":
            return PlainTextResponse(transcript.text + "\n")
        body = {"text": transcript.text, "usage": {"type": "duration", "seconds": seconds}}
        if response_format == "verbose_json":
            body |= {
                "task": task,
                "language": LANGUAGES.get(transcript.language, transcript.language),
                "duration": seconds,
            }
        return JSONResponse(body)

    @router.post("/audio/transcriptions", summary="What is said in a clip (Whisper)")
    async def transcriptions(
        request: Request,
        file: Annotated[UploadFile, File(description="WAV, MP3, FLAC, OGG; others need ffmpeg")],
        model_name: Annotated[str, Form(alias="model")],
        language: Annotated[
            str | None, Form(description="ISO-639-1 code; default: detected")
        ] = None,
        response_format: Annotated[Literal["json", "text", "verbose_json"], Form()] = "json",
    ) -> Response:
        try:
            transcript, seconds = await heard(request, file, model_name, language, "transcribe")
        except ClientGone:
            return Response(status_code=CLIENT_GONE)
        return transcript_response(transcript, seconds, response_format, "transcribe")

    @router.post("/audio/translations", summary="What is said in a clip, in English (Whisper)")
    async def translations(
        request: Request,
        file: Annotated[UploadFile, File(description="WAV, MP3, FLAC, OGG; others need ffmpeg")],
        model_name: Annotated[str, Form(alias="model")],
        response_format: Annotated[Literal["json", "text", "verbose_json"], Form()] = "json",
    ) -> Response:
        try:
            transcript, seconds = await heard(request, file, model_name, None, "translate")
        except ClientGone:
            return Response(status_code=CLIENT_GONE)
        return transcript_response(transcript, seconds, response_format, "translate")

    @router.post("/audio/speech", summary="Say a text aloud (local voices)")
    async def speech(request: Request, body: SpeechRequest) -> Response:
        check_model(body.model, SPEECH_MODELS)
        say = (body.input, body.voice, body.response_format, body.speed)
        try:
            audio = await while_connected(
                request, lambda: anyio.to_thread.run_sync(speech_bytes, *say)
            )
        except ClientGone:
            return Response(status_code=CLIENT_GONE)
        return Response(audio, media_type=MEDIA_TYPES[body.response_format])

    @router.api_route(
        "/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        include_in_schema=False,
    )
    async def unknown_route(request: Request, path: str) -> None:
        allowed = ROUTE_METHODS.get(request.url.path.rstrip("/"))
        if allowed:
            raise ApiError(
                405, f"{request.method} {request.url.path}: use {allowed}", "method_not_allowed",
                headers={"Allow": allowed},
            )  # fmt: skip
        raise ApiError(404, f"Invalid URL ({request.method} {request.url.path})", "unknown_url")

    return router


def check_model(name: str, accepted: tuple[str, ...], param: str | None = "model") -> None:
    if name not in accepted:
        choices = " or ".join(repr(choice) for choice in accepted)
        raise ApiError(
            404, f"The model {name[:200]!r} does not exist on this server; use {choices}",
            "model_not_found", param,
        )  # fmt: skip


def check_language(language: str | None) -> str | None:
    """A language code or name (en, English, english) -> its code; None stays None (detected)."""
    if not language:
        return None
    code = language.lower()
    code = TO_LANGUAGE_CODE.get(code, code)
    if code not in LANGUAGES:
        raise ApiError(
            400, f"unknown language {language[:50]!r}: use an ISO-639-1 code such as 'en'",
            "invalid_language", "language",
        )  # fmt: skip
    return code


def generation_options(body: ChatCompletionRequest, config: ApiConfig) -> GenerationOptions:
    if body.n != 1:
        message = f"n is {body.n}; only one choice per request is supported"
        raise ApiError(400, message, "unsupported_value", "n")
    if body.logprobs:
        raise ApiError(400, "logprobs are not supported", "unsupported_value", "logprobs")
    param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
    max_tokens = body.max_completion_tokens or body.max_tokens or config.default_max_tokens
    if max_tokens > config.max_tokens:
        raise ApiError(
            400, f"{param} is {max_tokens}; the limit is {config.max_tokens}",
            "max_tokens_too_large", param,
        )  # fmt: skip
    temperature, top_p = body.temperature or 0.0, 1.0 if body.top_p is None else body.top_p
    if top_p == 0.0 or temperature < MIN_TEMPERATURE:  # only the likeliest token: greedy
        temperature, top_p = 0.0, 1.0
    stops = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return GenerationOptions(
        max_new_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=body.seed,
        stop=tuple(stop for stop in stops if stop),
        repetition_penalty=body.repetition_penalty or config.default_repetition_penalty,
    )


async def while_connected(request: Request, work: Callable[[], Awaitable[T]]) -> T:
    """Await work(); when the client disconnects first, cancel it and raise ClientGone.

    Work that completed is returned even if the client left meanwhile: what it holds (a
    generation) is then closed by the next step, which sees the disconnect at once.
    """
    outcome: list = []  # [result] or [None, error]
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(watch)
        try:
            outcome.append(await work())
        except Exception as error:  # noqa: BLE001 - re-raised below, not as an exception group
            outcome += [None, error]
        group.cancel_scope.cancel()
    if not outcome:
        raise ClientGone
    if len(outcome) == 2:
        raise outcome[1]
    return outcome[0]
