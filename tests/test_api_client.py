"""The official `openai` client against a real server on 127.0.0.1 (tiny model): text, photo,
speech, both, streamed or not; transcriptions and translations; speech out (/v1/audio/speech
and spoken answers, streamed or not); errors as the client's exceptions; back-pressure (429)
and a client that leaves mid-answer."""

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import soundfile

from tests.api_support import (
    LiveServer,
    SlowModel,
    api_app,
    audio_part,
    chat,
    image_part,
    png_data_url,
    text_part,
    wait_until,
    wav_base64,
    wav_bytes,
)


@pytest.fixture(scope="module")
def server(model):
    with LiveServer(api_app(model, api_key="test-key")) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="test-key", max_retries=0) as client:
        yield client


def photo_part(seed: int = 0) -> dict:
    return {"type": "image_url", "image_url": {"url": png_data_url(seed)}}


def speech_part() -> dict:
    return {"type": "input_audio", "input_audio": {"data": wav_base64(1.2), "format": "wav"}}


CONTENTS = {
    "text": "What is in this photo?",
    "photo": [{"type": "text", "text": "What is in this photo?"}, photo_part()],
    "speech": [speech_part()],
    "photo and speech": [photo_part(1), speech_part()],
}


@pytest.mark.parametrize("kind", CONTENTS)
def test_client_gets_an_answer_with_usage_by_modality(client, model, kind):
    completion = client.chat.completions.create(
        model="lunettes", messages=[{"role": "user", "content": CONTENTS[kind]}], max_tokens=5
    )
    assert completion.choices[0].message.content and completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 5
    details = completion.usage.prompt_tokens_details
    assert details.image_tokens == (model.vision.num_tokens if "photo" in kind else 0)
    assert (details.audio_tokens > 0) == ("speech" in kind)
    assert (
        details.text_tokens + details.image_tokens + details.audio_tokens
        == completion.usage.prompt_tokens
    )
    assert len(completion.lunettes["heard"]) == ("speech" in kind)
    assert len(completion.lunettes["read_as"]) == ("speech" in kind)


@pytest.mark.parametrize("kind", ["text", "photo and speech"])
def test_client_streams_the_same_answer(client, kind):
    messages = [{"role": "user", "content": CONTENTS[kind]}]
    whole = client.chat.completions.create(model="lunettes", messages=messages, max_tokens=6)
    stream = client.chat.completions.create(
        model="lunettes",
        messages=messages,
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_client_lists_models_and_transcribes(client, model):
    assert [m.id for m in client.models.list()] == ["lunettes", model.lm_name]
    assert client.models.retrieve("lunettes").input_modalities == ["text", "image", "audio"]
    transcript = client.audio.transcriptions.create(
        model="whisper-1", file=("question.wav", wav_bytes(1.0))
    )
    assert isinstance(transcript.text, str)
    text = client.audio.transcriptions.create(
        model="whisper-1", file=("question.wav", wav_bytes(1.0)), response_format="text"
    )
    assert text.strip() == transcript.text.strip()


def test_client_translates_and_hears_answers_spoken(client):
    english = client.audio.translations.create(
        model="whisper-1", file=("question.wav", wav_bytes(1.0))
    )
    assert isinstance(english.text, str)
    speech = client.audio.speech.create(
        model="tts-1", voice="alloy", input="Your train leaves at nine.", response_format="wav"
    )
    samples, rate = soundfile.read(io.BytesIO(speech.content))
    assert rate > 8000 and len(samples) / rate > 0.3
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input="Your train leaves at nine.", response_format="pcm"
    ) as streamed:
        pcm = b"".join(streamed.iter_bytes())
    assert len(pcm) % 2 == 0 and len(pcm) / 2 / 24_000 > 0.3  # raw 16-bit samples at 24 kHz

    asked = {
        "model": "lunettes",
        "messages": [{"role": "user", "content": "Tell me a story"}],
        "max_tokens": 12,
        "modalities": ["text", "audio"],
    }
    whole = client.chat.completions.create(**asked, audio={"voice": "alloy", "format": "wav"})
    said = whole.choices[0].message.audio
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(said.data)))
    assert said.transcript and len(samples) / rate > 0.3
    deltas = [
        chunk.choices[0].delta.model_dump()
        for chunk in client.chat.completions.create(
            **asked, audio={"voice": "alloy", "format": "pcm16"}, stream=True
        )
        if chunk.choices
    ]
    pieces = [d["audio"] for d in deltas if d.get("audio")]
    assert "".join(p.get("transcript") or "" for p in pieces) == said.transcript
    assert sum(len(base64.b64decode(p["data"])) for p in pieces if p.get("data")) > 0


@pytest.mark.parametrize(
    ("fields", "refused"),
    [
        ({"input": ""}, openai.UnprocessableEntityError),
        ({"input": "x" * 4097}, openai.UnprocessableEntityError),
        ({"voice": "nobody"}, openai.BadRequestError),
        ({"response_format": "ogg"}, openai.UnprocessableEntityError),
    ],
    ids=["empty", "overlong", "unknown voice", "unknown format"],
)
def test_client_sees_bad_speech_requests_refused(client, fields, refused):
    asked = {"model": "tts-1", "voice": "alloy", "input": "Hello.", **fields}
    with pytest.raises(refused) as error:
        client.audio.speech.create(**asked)
    assert 400 <= error.value.status_code < 500 and error.value.message


def test_client_sees_errors_as_its_exceptions(server, client):
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert error.value.code == "model_not_found" and error.value.param == "model"
    bad_photo = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGEgcGhvdG8="}}
    ]
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(
            model="lunettes", messages=[{"role": "user", "content": bad_photo}]
        )
    assert error.value.code == "invalid_image" and "not an image" in error.value.message
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(
            model="lunettes", messages=[{"role": "robot", "content": "Hi"}]
        )
    stranger = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with stranger, pytest.raises(openai.AuthenticationError):
        stranger.models.list()


def test_web_app_and_api_on_one_port(model):
    from app.openai_api.config import ApiConfig
    from app.server import build_server

    with LiveServer(build_server(model, ApiConfig(max_tokens=8, default_max_tokens=4))) as server:
        assert "text/html" in httpx.get(server.url + "/").headers["content-type"]
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0) as client:
            answer = client.chat.completions.create(
                model="lunettes", messages=[{"role": "user", "content": "Hi"}]
            )
            assert answer.usage.completion_tokens == 4


@pytest.fixture
def slow(model):
    """A server whose model pauses 50 ms before each piece of an answer, with one place
    waiting: at most two requests admitted. -> (the model, the server, its worker)"""
    slow = SlowModel(model, pause_s=0.05)
    app = api_app(slow, max_waiting=1)
    with LiveServer(app) as server:
        yield slow, server, app.state.worker


def test_full_queue_is_refused_with_429_and_retry_after(slow):
    _, server, worker = slow
    body = chat("Tell me a long story", max_tokens=30)
    url = f"{server.url}/v1/chat/completions"
    with ThreadPoolExecutor(2) as pool:
        answered = [pool.submit(httpx.post, url, json=body, timeout=30) for _ in range(2)]
        assert wait_until(lambda: worker.admission.held == 2)  # one answering, one waiting
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
        with client, pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(
                model="lunettes", messages=[{"role": "user", "content": "Hi"}]
            )
        assert int(refused.value.response.headers["retry-after"]) >= 1
        assert refused.value.code == "server_busy"
        first, second = (future.result() for future in answered)
    assert first.status_code == second.status_code == 200
    assert first.json()["choices"] == second.json()["choices"]
    assert wait_until(lambda: worker.admission.held == 0)  # the places were given back
    assert httpx.post(url, json=chat("Hi", max_tokens=3)).status_code == 200


def test_client_that_leaves_mid_stream_stops_its_answer(slow):
    model, server, _ = slow
    body = chat("Tell me a long story", max_tokens=30, stream=True)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            while "content" not in next(lines):
                pass
        # leaving the block closed the connection after ~1 of 30 pieces
        assert wait_until(lambda: model.closed == 1)
        assert model.chunks < 15 and model.finished == 0
        started = model.started
        answer = http.post("/v1/chat/completions", json=chat("Hi", max_tokens=3))
        assert answer.status_code == 200 and model.started == started + 1


def test_requests_are_answered_together_and_one_that_leaves_stops_alone(slow):
    model, server, worker = slow
    long = chat("Tell me a long story", max_tokens=30)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        with http.stream("POST", "/v1/chat/completions", json={**long, "stream": True}) as first:
            lines = first.iter_lines()
            next(lines)
            with pytest.raises(httpx.ReadTimeout):  # answered beside the first, then gives up
                http.post("/v1/chat/completions", json=long, timeout=0.3)
            assert model.started == 2  # both answers ran at once
            assert wait_until(lambda: model.closed == 1)  # the one that left was stopped
            rest = list(lines)  # the first goes on to its end
        assert rest[-1] == "data: [DONE]" or "data: [DONE]" in rest
        assert model.finished == 1 and model.closed == 1
        assert wait_until(lambda: worker.admission.held == 0)
        assert worker.model.decoder.running == 0  # no row left behind
        assert http.post("/v1/chat/completions", json=chat("Hi", max_tokens=3)).status_code == 200


def test_non_streamed_request_whose_client_leaves_is_stopped(slow):
    model, server, _ = slow
    with httpx.Client(base_url=server.url, timeout=0.5) as http, pytest.raises(httpx.ReadTimeout):
        http.post("/v1/chat/completions", json=chat("Tell me a long story", max_tokens=30))
    assert wait_until(lambda: model.closed == 1)
    assert model.chunks < 30


def test_photo_and_speech_parts_in_many_messages(client):
    messages = [
        {"role": "user", "content": [text_part("First photo"), image_part(png_data_url(2))]},
        {"role": "assistant", "content": "Seen."},
        {"role": "user", "content": [audio_part(base64.b64encode(wav_bytes(0.8)).decode())]},
    ]
    completion = client.chat.completions.create(model="lunettes", messages=messages, max_tokens=3)
    details = completion.usage.prompt_tokens_details
    assert details.image_tokens > 0 and details.audio_tokens > 0
