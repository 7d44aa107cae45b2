"""The /v1 routes on the tiny model, in-process (FastAPI's TestClient): answers in OpenAI's
shapes, usage split by modality, streaming, models, transcriptions, access and the web app
on the same server."""

import json

import pytest
from fastapi.testclient import TestClient

from app.openai_api.config import ApiConfig
from app.server import build_server, exposure_warnings
from tests.api_support import (
    api_app,
    audio_part,
    chat,
    image_part,
    png_data_url,
    text_part,
    wav_base64,
    wav_bytes,
)


@pytest.fixture(scope="module")
def client(model):
    with TestClient(api_app(model)) as client:
        yield client


def sse_chunks(text: str) -> list:
    """A server-sent event stream -> its JSON payloads, with "[DONE]" kept as a string."""
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    return [event if event == "[DONE]" else json.loads(event) for event in events]


def test_text_answer_in_openai_shape(client):
    response = client.post("/v1/chat/completions", json=chat("Hello there"))
    assert response.status_code == 200
    answer = response.json()
    assert answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    assert answer["model"] == "lunettes"
    (choice,) = answer["choices"]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] == "length"  # the tiny LM never says its end token
    usage = answer["usage"]
    details = usage["prompt_tokens_details"]
    assert usage["completion_tokens"] == 6  # TEST_LIMITS' default_max_tokens
    assert details["text_tokens"] == usage["prompt_tokens"] > 0
    assert details["image_tokens"] == details["audio_tokens"] == 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert answer["lunettes"]["adapter_trained"] is False and answer["lunettes"]["heard"] == []


def test_photo_and_speech_in_one_message_split_the_usage(client, model):
    body = chat(
        text_part("What is this?"), image_part(), image_part(png_data_url(seed=3)), audio_part()
    )
    answer = client.post("/v1/chat/completions", json=body).json()
    details = answer["usage"]["prompt_tokens_details"]
    assert details["image_tokens"] == 2 * model.vision.num_tokens
    assert details["audio_tokens"] > 0 and details["text_tokens"] > 0
    assert (
        sum(details[k] for k in ("text_tokens", "image_tokens", "audio_tokens"))
        == answer["usage"]["prompt_tokens"]
    )
    assert len(answer["lunettes"]["heard"]) == 1


def test_stream_gives_the_same_answer_in_chunks(client):
    body = chat(image_part(), audio_part(), max_tokens=8)
    whole = client.post("/v1/chat/completions", json=body).json()
    response = client.post(
        "/v1/chat/completions",
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = sse_chunks(response.text)
    assert chunks[-1] == "[DONE]"
    *answer_chunks, usage_chunk = chunks[:-1]
    assert answer_chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(
        c["object"] == "chat.completion.chunk" and c["id"] == answer_chunks[0]["id"]
        for c in chunks[:-1]
    )
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in answer_chunks)
    assert text == whole["choices"][0]["message"]["content"]
    assert answer_chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert answer_chunks[-1]["lunettes"]["heard"] == whole["lunettes"]["heard"]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == whole["usage"]
    assert all(c["usage"] is None for c in answer_chunks)  # as OpenAI, with include_usage


def test_stream_without_usage_has_no_usage_chunk(client):
    chunks = sse_chunks(client.post("/v1/chat/completions", json=chat("Hi", stream=True)).text)
    assert chunks[-1] == "[DONE]" and all("usage" not in c for c in chunks[:-1])


def test_generation_options_are_honoured(client):
    first = client.post("/v1/chat/completions", json=chat("Hi", max_tokens=12)).json()
    text = first["choices"][0]["message"]["content"]
    stop = text[3:5]
    stopped = client.post(
        "/v1/chat/completions", json=chat("Hi", max_tokens=12, stop=[stop])
    ).json()
    assert stopped["choices"][0]["message"]["content"] == text[: text.index(stop)]
    assert stopped["choices"][0]["finish_reason"] == "stop"
    newer = client.post(
        "/v1/chat/completions", json=chat("Hi", max_tokens=20, max_completion_tokens=3)
    ).json()
    assert newer["usage"]["completion_tokens"] == 3  # max_completion_tokens wins
    sampled = [
        client.post(
            "/v1/chat/completions",
            json=chat("Hi", temperature=1.5, top_p=0.9, seed=seed, max_tokens=10),
        ).json()["choices"][0]["message"]["content"]
        for seed in (7, 7, 8)
    ]
    assert sampled[0] == sampled[1] != sampled[2]
    greedy = client.post(
        "/v1/chat/completions", json=chat("Hi", max_tokens=12, temperature=1.0, top_p=0)
    ).json()
    assert greedy["choices"][0]["message"]["content"] == text  # top_p 0: the likeliest token
    tiny = client.post("/v1/chat/completions", json=chat("Hi", max_tokens=12, temperature=1e-300))
    assert tiny.json()["choices"][0]["message"]["content"] == text  # found by the fuzzer: a 500


def test_each_request_is_its_own_conversation(client):
    history = {
        "model": "lunettes",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [text_part("Look"), image_part()]},
            {"role": "assistant", "content": "A cat."},
            {"role": "developer", "content": [text_part("Answer in French.")]},
            {"role": "user", "content": "And now?"},
        ],
    }
    with_photo = client.post("/v1/chat/completions", json=history).json()
    assert with_photo["usage"]["prompt_tokens_details"]["image_tokens"] > 0
    plain = client.post("/v1/chat/completions", json=chat("And now?")).json()
    assert plain["usage"]["prompt_tokens_details"]["image_tokens"] == 0
    again = client.post("/v1/chat/completions", json=history).json()
    assert again["choices"] == with_photo["choices"] and again["usage"] == with_photo["usage"]


def test_models_list_the_model_and_its_modalities(client, model):
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list"
    ids = [card["id"] for card in listing["data"]]
    assert ids == ["lunettes", model.lm_name]
    card = listing["data"][0]
    assert card["input_modalities"] == ["text", "image", "audio"]
    assert card["lunettes"]["adapter"]["trained"] is False
    assert client.get("/v1/models/lunettes").json()["id"] == "lunettes"
    missing = client.get("/v1/models/gpt-4o")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    lm_named = client.post("/v1/chat/completions", json={**chat("Hi"), "model": model.lm_name})
    assert lm_named.status_code == 200 and lm_named.json()["model"] == model.lm_name


@pytest.mark.parametrize("response_format", ["json", "text", "verbose_json"])
def test_transcription_formats(client, response_format):
    response = client.post(
        "/v1/audio/transcriptions",
        files={"file": ("question.wav", wav_bytes(1.5), "audio/wav")},
        data={"model": "whisper-1", "response_format": response_format, "language": "en"},
    )
    assert response.status_code == 200
    if response_format == "text":
        assert response.headers["content-type"].startswith("text/plain")
    else:
        body = response.json()
        assert isinstance(body["text"], str) and body["usage"] == {
            "type": "duration",
            "seconds": 1.5,
        }
        if response_format == "verbose_json":
            assert body["language"] == "english" and body["duration"] == 1.5


@pytest.mark.parametrize("response_format", ["json", "verbose_json"])
def test_translation_formats(client, response_format):
    response = client.post(
        "/v1/audio/translations",
        files={"file": ("question.wav", wav_bytes(1.5), "audio/wav")},
        data={"model": "whisper-1", "response_format": response_format},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["text"], str) and body["usage"]["seconds"] == 1.5
    if response_format == "verbose_json":
        assert body["task"] == "translate"


def test_openapi_document_describes_the_routes(client):
    document = client.get("/v1/openapi.json").json()
    routes = {"/v1/chat/completions", "/v1/models", "/v1/audio/transcriptions",
              "/v1/audio/translations", "/v1/audio/speech"}  # fmt: skip
    assert routes <= set(document["paths"])
    assert "ChatCompletionRequest" in document["components"]["schemas"]


def test_api_key_is_checked_on_every_api_route(model):
    app = api_app(model, api_key="sesame")
    requests = [
        ("GET", "/v1/models", {}),
        ("GET", "/v1/models/lunettes", {}),
        ("GET", "/v1/openapi.json", {}),
        ("POST", "/v1/chat/completions", {"json": chat("Hi")}),
        (
            "POST",
            "/v1/audio/transcriptions",
            {"files": {"file": ("a.wav", wav_bytes())}, "data": {"model": "whisper-1"}},
        ),
        ("GET", "/v1/anything", {}),
    ]
    with TestClient(app) as client:
        for method, path, kwargs in requests:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sesame"}):
                response = client.request(method, path, headers=headers, **kwargs)
                assert response.status_code == 401, (path, headers)
                assert response.json()["error"]["code"] == "invalid_api_key"
                assert response.headers["www-authenticate"] == "Bearer"
            ok = client.request(method, path, headers={"Authorization": "Bearer sesame"}, **kwargs)
            assert ok.status_code == (404 if path == "/v1/anything" else 200), path


def test_web_app_and_api_share_one_server(model):
    server = build_server(model, ApiConfig(max_tokens=32, default_max_tokens=4))
    with TestClient(server) as client:
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert client.get("/v1/models").status_code == 200
        assert client.post("/v1/chat/completions", json=chat("Hi")).status_code == 200
        assert client.get("/v1/unknown").json()["error"]["code"] == "unknown_url"


def test_web_login_guards_the_web_app_not_the_api(model):
    server = build_server(model, ApiConfig(api_key="k"), ui_login=("ana", "secret"))
    with TestClient(server) as client:
        assert client.get("/config").status_code == 401
        login = client.post("/login", data={"username": "ana", "password": "secret"})
        assert login.status_code == 200
        assert client.get("/config").status_code == 200
        assert client.get("/v1/models", headers={"Authorization": "Bearer k"}).status_code == 200


def test_public_address_without_protection_is_warned_about():
    assert exposure_warnings("127.0.0.1", ApiConfig(), None) == []
    assert exposure_warnings("::1", ApiConfig(), None) == []
    warnings = exposure_warnings("0.0.0.0", ApiConfig(), None)
    assert len(warnings) == 2 and "API key" in warnings[0] and "login" in warnings[1]
    assert exposure_warnings("0.0.0.0", ApiConfig(api_key="k"), ("a", "b")) == []
    assert (
        "fetch"
        in exposure_warnings(
            "192.168.1.5", ApiConfig(api_key="k", allow_remote_media=True), ("a", "b")
        )[0]
    )


def test_serve_flags_and_environment(monkeypatch):
    from app import cli

    monkeypatch.setenv("LUNETTES_API_KEY", "from-env")
    monkeypatch.setenv("LUNETTES_AUTH", "ana:pass:word")
    args = cli.build_parser().parse_args(["serve", "--allow-remote-media", "--max-waiting", "2"])
    assert args.api_key == "from-env" and cli.web_logins(args) == [("ana", "pass:word")]
    assert args.allow_remote_media and args.max_waiting == 2 and args.host == "127.0.0.1"
    args = cli.build_parser().parse_args(
        ["serve", "--api-key", "flag", "--auth", "bo:pw", "--auth", "cy:pw2"]
    )
    assert args.api_key == "flag" and cli.web_logins(args) == [("bo", "pw"), ("cy", "pw2")]
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["serve", "--auth", "no-colon"])


def test_remote_photo_is_fetched_when_allowed(model):
    """A photo at an http URL (served by this very API's test server) is fetched when enabled."""
    from fastapi import FastAPI
    from fastapi.responses import Response

    from tests.api_support import LiveServer, png_bytes

    photos = FastAPI()
    photos.get("/cat.png")(lambda: Response(png_bytes(), media_type="image/png"))
    photos.get("/huge.png")(lambda: Response(b"\0" * 200_000, media_type="image/png"))
    with (
        LiveServer(photos) as remote,
        TestClient(api_app(model, allow_remote_media=True, remote_media_bytes=100_000)) as client,
    ):
        fetched = client.post(
            "/v1/chat/completions", json=chat(image_part(f"{remote.url}/cat.png"))
        )
        assert fetched.status_code == 200
        assert (
            fetched.json()["usage"]["prompt_tokens_details"]["image_tokens"]
            == model.vision.num_tokens
        )
        for path, code in (
            ("/huge.png", "image_too_large"),
            ("/missing.png", "remote_media_unavailable"),
        ):
            refused = client.post(
                "/v1/chat/completions", json=chat(image_part(f"{remote.url}{path}"))
            )
            assert refused.status_code == 400 and refused.json()["error"]["code"] == code


def test_clip_as_data_url_is_accepted(client):
    body = chat(audio_part("data:audio/wav;base64," + wav_base64()))
    assert client.post("/v1/chat/completions", json=body).status_code == 200
