"""Bad requests get a clear error in OpenAI's JSON with the right status, never a 500.

Each case names what was sent and the status and code it must get; the list is the one the
README's "HTTP API" section reports.
"""

import base64

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api_support import (
    api_app,
    audio_part,
    chat,
    image_part,
    png_bytes,
    png_data_url,
    text_part,
    wav_base64,
    wav_bytes,
)
from tests.tiny import png_header

LIMITS = {
    "max_body_bytes": 1 << 20,
    "max_image_pixels": 100_000,
    "max_audio_seconds": 2.0,
    "max_media_parts": 3,
    "max_text_chars": 5_000,
}


@pytest.fixture(scope="module")
def client(model):
    with TestClient(api_app(model, **LIMITS)) as client:
        yield client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_url(data: bytes) -> str:
    return "data:image/png;base64," + b64(data)


def with_messages(*messages, **fields) -> dict:
    return {"model": "lunettes", "messages": list(messages), **fields}


BAD_JSON = [  # (what, raw body, status, code)
    ("malformed JSON", b'{"model": "lunettes", "messages": [', 400, "invalid_json"),
    ("empty body", b"", 400, "invalid_json"),
    ("body is a list", b"[1, 2]", 422, "invalid_value"),
    ("body is a number", b"42", 422, "invalid_value"),
    (
        "NaN temperature",
        b'{"model": "lunettes", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
        422,
        "invalid_value",
    ),
    ("not UTF-8", b'{"model": "\xff\xfe"}', 400, "invalid_body"),
    ("JSON nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, 400, "invalid_body"),
    (
        "a 5,000-digit number",
        b'{"model": "lunettes", "max_tokens": 1' + b"0" * 5000 + b"}",
        400,
        "invalid_body",
    ),
]

BAD_BODIES = [  # (what, body, status, code)
    ("no messages field", {"model": "lunettes"}, 422, "invalid_value"),
    ("no model field", {"messages": [{"role": "user", "content": "x"}]}, 422, "invalid_value"),
    ("empty messages", with_messages(), 422, "invalid_value"),
    ("unknown role", with_messages({"role": "robot", "content": "x"}), 422, "invalid_value"),
    (
        "tool role",
        with_messages({"role": "tool", "content": "x", "tool_call_id": "1"}),
        422,
        "invalid_value",
    ),
    (
        "unknown part type",
        chat({"type": "video_url", "video_url": {"url": "x"}}),
        422,
        "invalid_value",
    ),
    ("content is a number", with_messages({"role": "user", "content": 5}), 422, "invalid_value"),
    (
        "image_url is a string",
        chat({"type": "image_url", "image_url": "data:..."}),
        422,
        "invalid_value",
    ),
    ("url is a number", chat({"type": "image_url", "image_url": {"url": 5}}), 422, "invalid_value"),
    ("audio format unknown", chat(audio_part(format="aiff")), 422, "invalid_value"),
    (
        "photo in a system message",
        with_messages({"role": "system", "content": [image_part()]}),
        422,
        "invalid_value",
    ),
    ("temperature is a string", chat("x", temperature="hot"), 422, "invalid_value"),
    ("max_tokens is a string", chat("x", max_tokens="5"), 422, "invalid_value"),
    ("stream is a string", chat("x", stream="yes"), 422, "invalid_value"),
    ("temperature 3", chat("x", temperature=3), 422, "invalid_value"),
    ("top_p 1.5", chat("x", top_p=1.5), 422, "invalid_value"),
    ("max_tokens 0", chat("x", max_tokens=0), 422, "invalid_value"),
    ("five stop strings", chat("x", stop=["a", "b", "c", "d", "e"]), 422, "invalid_value"),
    ("seed 2**64", chat("x", seed=2**64), 422, "invalid_value"),
    ("n = 2", chat("x", n=2), 400, "unsupported_value"),
    ("logprobs", chat("x", logprobs=True), 400, "unsupported_value"),
    ("max_tokens over the limit", chat("x", max_tokens=33), 400, "max_tokens_too_large"),
    ("unknown model", {**chat("x"), "model": "gpt-4o"}, 404, "model_not_found"),
    (
        "corrupt base64 photo",
        chat(image_part("data:image/png;base64,iVBOR%%%")),
        400,
        "invalid_base64",
    ),
    (
        "base64 with a lone last character",
        chat(image_part("data:image/png;base64,AAAAA")),
        400,
        "invalid_base64",
    ),
    (
        "base64 of text, not a photo",
        chat(image_part(png_url(b"hello, I am not a photo"))),
        400,
        "invalid_image",
    ),
    (
        "truncated PNG",
        chat(image_part(png_url(png_bytes(width=200, height=150)[:300]))),
        400,
        "invalid_image",
    ),
    ("empty photo", chat(image_part("data:image/png;base64,")), 400, "invalid_image"),
    (
        "photo over the pixel limit",
        chat(image_part(png_data_url(width=400, height=300))),
        400,
        "image_too_large",
    ),
    (
        "header claiming 1 gigapixel",
        chat(image_part(png_url(png_header(40_000, 25_000)))),
        400,
        "image_too_large",
    ),
    (
        "data URL without base64",
        chat(image_part("data:image/png,rawbytes")),
        400,
        "invalid_image_url",
    ),
    ("file:// URL", chat(image_part("file:///etc/passwd")), 400, "invalid_image_url"),
    ("plain path", chat(image_part("/home/me/cat.jpg")), 400, "invalid_image_url"),
    (
        "http URL while remote media is off",
        chat(image_part("http://127.0.0.1:1/cat.jpg")),
        400,
        "remote_media_disabled",
    ),
    ("corrupt base64 clip", chat(audio_part("UklGR!!!")), 400, "invalid_base64"),
    (
        "undecodable clip",
        chat(audio_part(b64(np.random.default_rng(0).bytes(4000)))),
        400,
        "invalid_audio",
    ),
    ("empty clip", chat(audio_part("")), 400, "invalid_audio"),
    (
        "silent clip",
        chat(audio_part(b64(wav_bytes(samples=np.zeros(16_000, np.float32))))),
        400,
        "invalid_audio",
    ),
    (
        "clip over the seconds limit",
        chat(audio_part(wav_base64(seconds=3.0))),
        400,
        "audio_too_long",
    ),
    ("two clips in one message", chat(audio_part(), audio_part()), 400, "too_many_audio_parts"),
    ("more media parts than allowed", chat(*[image_part()] * 4), 400, "too_many_media_parts"),
    ("text over the limit", chat("word " * 1_001), 400, "text_too_long"),
    ("empty user message", with_messages({"role": "user", "content": []}), 400, "invalid_input"),
    ("conversation longer than the context", chat("zqxj " * 900), 400, "invalid_input"),
]


def assert_openai_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["error"]["code"] == code
    assert body["error"]["type"] == ("invalid_request_error" if status < 500 else "server_error")


@pytest.mark.parametrize(("what", "raw", "status", "code"), BAD_JSON, ids=[c[0] for c in BAD_JSON])
def test_unparsable_body(client, what, raw, status, code):
    response = client.post(
        "/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_openai_error(response, status, code)


@pytest.mark.parametrize(
    ("what", "body", "status", "code"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES]
)
def test_bad_request(client, what, body, status, code):
    assert_openai_error(client.post("/v1/chat/completions", json=body), status, code)


def test_bad_request_names_the_parameter(client):
    body = with_messages(
        {"role": "user", "content": "fine"},
        {
            "role": "user",
            "content": [text_part("look"), {"type": "image_url", "image_url": {"url": 5}}],
        },
    )
    error = client.post("/v1/chat/completions", json=body).json()["error"]
    assert error["param"] == "messages[1].content[1].image_url.url"
    assert error["message"].startswith("messages[1].content[1].image_url.url: ")
    error = client.post(
        "/v1/chat/completions", json=chat(image_part("data:image/png;base64,@@"))
    ).json()["error"]
    assert error["param"] == "messages[0].content[0].image_url.url"


def test_body_over_the_limit_is_refused_unread(client):
    big = chat(image_part("data:image/png;base64," + "A" * (1 << 20)))
    assert_openai_error(client.post("/v1/chat/completions", json=big), 413, "request_too_large")

    def chunked():  # no Content-Length: the limit applies while reading
        yield b'{"model": "lunettes", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}]}'

    response = client.post(
        "/v1/chat/completions", content=chunked(), headers={"Content-Type": "application/json"}
    )
    assert_openai_error(response, 413, "request_too_large")


def test_wrong_content_type_and_method_and_path(client):
    response = client.post(
        "/v1/chat/completions",
        content=b"model=lunettes",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_openai_error(response, 422, "invalid_value")
    assert_openai_error(client.get("/v1/chat/completions"), 405, "method_not_allowed")
    assert_openai_error(client.post("/v1/completions", json={}), 404, "unknown_url")
    assert_openai_error(client.get("/v1"), 404, "unknown_url")


TRANSCRIPTION_CASES = [  # (what, files, data, status, code)
    ("no file", None, {"model": "whisper-1"}, 422, "invalid_value"),
    ("no model", {"file": ("a.wav", wav_bytes())}, {}, 422, "invalid_value"),
    (
        "unknown model",
        {"file": ("a.wav", wav_bytes())},
        {"model": "gpt-5-ears"},
        404,
        "model_not_found",
    ),
    (
        "undecodable file",
        {"file": ("a.wav", b"RIFF....WAVEfmt garbage")},
        {"model": "whisper-1"},
        400,
        "invalid_audio",
    ),
    ("empty file", {"file": ("a.wav", b"")}, {"model": "whisper-1"}, 400, "invalid_audio"),
    (
        "unknown language",
        {"file": ("a.wav", wav_bytes())},
        {"model": "whisper-1", "language": "klingon"},
        400,
        "invalid_language",
    ),
    (
        "srt format",
        {"file": ("a.wav", wav_bytes())},
        {"model": "whisper-1", "response_format": "srt"},
        422,
        "invalid_value",
    ),
]


@pytest.mark.parametrize(
    ("what", "files", "data", "status", "code"),
    TRANSCRIPTION_CASES,
    ids=[c[0] for c in TRANSCRIPTION_CASES],
)
def test_bad_transcription(client, what, files, data, status, code):
    response = client.post("/v1/audio/transcriptions", files=files, data=data)
    assert_openai_error(response, status, code)


def test_malformed_multipart(client):
    response = client.post(
        "/v1/audio/transcriptions",
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code in (400, 422) and "error" in response.json()


def test_a_model_failure_is_a_clean_logged_500(model, monkeypatch, caplog):
    """Not a bad request but a bug: the client still gets OpenAI's error JSON, no traceback."""
    with TestClient(api_app(model), raise_server_exceptions=False) as client:
        monkeypatch.setattr(model.tokenizer, "apply_chat_template", broken)
        for body in (chat("Hi"), chat("Hi", stream=True)):
            response = client.post("/v1/chat/completions", json=body)
            assert_openai_error(response, 500, "internal_error")
            assert "Traceback" not in response.text
        assert "the model failed" in caplog.text


def broken(*args, **kwargs):
    raise RuntimeError("a bug")
