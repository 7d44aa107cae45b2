"""End to end on the real embedded bundle: the official `openai` client sends a spoken question
(espeak-ng WAV, base64) with a photo, and gets an answer, the transcript and the usage split
by modality; the same clip through /v1/audio/transcriptions; French speech translated into
English; an answer spoken by the neural voice and heard back by Whisper."""

import base64
import io
import shutil
import subprocess
from pathlib import Path

import openai
import pytest
import soundfile

from app.openai_api.config import ApiConfig
from app.server import build_server
from tests.api_support import LiveServer

pytestmark = pytest.mark.bundle

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "assets" / "examples" / "cat.jpg"
SPOKEN = "What is the weather like in Paris today?"


@pytest.fixture(scope="module")
def spoken_wav(tmp_path_factory) -> bytes:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SPOKEN], check=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def client():
    from fusion.bundle import load_model

    server = LiveServer(build_server(load_model(), ApiConfig(api_key="bundle-key")))
    with (
        server,
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="bundle-key", max_retries=0) as client,
    ):
        yield client


def test_spoken_question_and_photo_through_the_openai_client(client, spoken_wav):
    photo = "data:image/jpeg;base64," + base64.b64encode(PHOTO.read_bytes()).decode()
    content = [
        {"type": "image_url", "image_url": {"url": photo}},
        {
            "type": "input_audio",
            "input_audio": {"data": base64.b64encode(spoken_wav).decode(), "format": "wav"},
        },
    ]
    completion = client.chat.completions.create(
        model="lunettes", messages=[{"role": "user", "content": content}], max_tokens=16
    )
    assert completion.choices[0].message.content.strip()
    details = completion.usage.prompt_tokens_details
    # EfficientNet-Lite0's 7x7 feature map, with "This is a cat." on both sides
    assert 49 < details.image_tokens <= 49 + 2 * 12
    assert details.audio_tokens > 0 and details.text_tokens > 0
    assert normalise(completion.lunettes["heard"][0]) == normalise(SPOKEN)
    assert len(completion.lunettes["read_as"]) == 1  # what the LM was given for the clip
    assert completion.lunettes["adapter_trained"] is True  # the shipped, trained adapter


def test_typed_question_streams_a_sensible_answer(client):
    stream = client.chat.completions.create(
        model="lunettes",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        stream=True,
    )
    assert "Paris" in "".join(
        chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices
    )


def test_transcription_of_the_spoken_question(client, spoken_wav):
    transcript = client.audio.transcriptions.create(
        model="whisper-1", file=("question.wav", spoken_wav)
    )
    assert normalise(transcript.text) == normalise(SPOKEN)


def test_french_speech_is_translated_into_english(client, tmp_path):
    path = tmp_path / "french.wav"
    said = "Je voudrais un café et un croissant, s'il vous plaît."
    subprocess.run(["espeak-ng", "-v", "fr", "-s", "140", "-w", str(path), said], check=True)
    heard = client.audio.transcriptions.create(model="whisper-1", file=path.open("rb"))
    english = client.audio.translations.create(model="whisper-1", file=path.open("rb"))
    assert "caf" in heard.text.lower()  # transcribed in French
    assert "coffee" in english.text.lower() and english.text.isascii()  # said in English


def test_an_answer_is_spoken_in_the_neural_voice(client):
    speech = client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input="Your train leaves from the last platform.",
        response_format="wav",
    )
    samples, rate = soundfile.read(io.BytesIO(speech.content))
    assert rate == 22_050 and 1.0 < len(samples) / rate < 4.0
    heard = client.audio.transcriptions.create(
        model="whisper-1", file=("answer.wav", speech.content)
    )
    assert normalise(heard.text) == normalise("Your train leaves from the last platform.")


def normalise(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum() or c == " ").strip()
