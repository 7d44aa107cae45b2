"""POST /v1/audio/speech: OpenAI's route on the local voices, every format, bad input."""

import io
import subprocess

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

from app import speech_out
from app.openai_api.speech import PCM_RATE, VOICES
from tests.api_support import api_app

SENTENCE = "The train to Lyon leaves from platform four at nine."


@pytest.fixture(scope="module")
def client(model):
    with TestClient(api_app(model)) as client:
        yield client


def say(client, **fields):
    body = {"model": "tts-1", "input": SENTENCE, "voice": "alloy", **fields}
    return client.post("/v1/audio/speech", json=body)


def decoded_seconds(data: bytes) -> float:
    """Any container -> its duration, decoded by ffmpeg (make test installs it)."""
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "pipe:0", "-f", "wav", "pipe:1"],
        input=data, capture_output=True, check=True,
    )  # fmt: skip
    samples, rate = soundfile.read(io.BytesIO(result.stdout))
    return len(samples) / rate


def test_the_neural_voice_says_it_in_wav(client):
    response = say(client, response_format="wav")
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    samples, rate = soundfile.read(io.BytesIO(response.content))
    assert rate == 22_050 and 2.0 < len(samples) / rate < 6.0  # ten words, ~160 a minute
    assert np.abs(samples).max() > 0.1  # speech, not silence


@pytest.mark.parametrize("response_format", ["mp3", "opus", "aac", "flac"])
def test_each_format_decodes_to_the_same_speech(client, response_format):
    response = say(client, response_format=response_format, voice="joe")
    assert response.status_code == 200
    assert 2.0 < decoded_seconds(response.content) < 6.0


def test_mp3_is_the_default(client):
    response = say(client)
    assert response.headers["content-type"] == "audio/mpeg" and 2.0 < decoded_seconds(
        response.content
    )


def test_pcm_is_raw_16_bit_at_24_khz(client):
    response = say(client, response_format="pcm")
    assert response.status_code == 200 and len(response.content) % 2 == 0
    seconds = len(response.content) / 2 / PCM_RATE
    assert 2.0 < seconds < 6.0


def test_speed_shortens_the_speech(client):
    normal = say(client, response_format="pcm").content
    fast = say(client, response_format="pcm", speed=2.0).content
    assert 0.35 < len(fast) / len(normal) < 0.7


def test_openai_voice_names_map_to_local_voices(client):
    assert {"alloy", "echo", "nova", "shimmer", "onyx", "joe", "slt", "espeak"} <= set(VOICES)
    for voice in ("nova", "espeak"):
        response = say(client, response_format="wav", voice=voice)
        assert response.status_code == 200, response.text
        assert len(soundfile.read(io.BytesIO(response.content))[0]) > 0


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"voice": "nobody"}, 400, "invalid_voice"),
        ({"input": ""}, 422, None),
        ({"input": "x" * 4097}, 422, None),
        ({"input": "👓 🎩"}, 400, "empty_input"),
        ({"speed": 9.0}, 422, None),
        ({"response_format": "ogg"}, 422, None),
        ({"model": "dall-e-3"}, 404, "model_not_found"),
    ],
)
def test_bad_requests_say_what_to_change(client, fields, status, code):
    response = say(client, **fields)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code


def test_the_speech_engines_are_all_installed_by_make_test():
    assert speech_out.available_engines() == ["piper", "flite", "espeak-ng"]
