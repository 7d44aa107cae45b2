"""Live translation mode on the real embedded bundle: French said aloud becomes English."""

import shutil
import subprocess

import pytest

from app import web_actions as act
from app.web_session import WebSession
from encoders.audio_io import load_audio

pytestmark = pytest.mark.bundle


def test_french_speech_is_captioned_in_english(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    from fusion.bundle import load_model

    clip = tmp_path / "french.wav"
    said = "Je voudrais un café et un croissant, s'il vous plaît."
    subprocess.run(["espeak-ng", "-v", "fr", "-s", "140", "-w", str(clip), said], check=True)
    session = WebSession(root=tmp_path)
    session.ask("", speech=load_audio(clip))
    chat, _ = list(act.respond(load_model(), session, 16, 0.0, "", True))[-1]
    turn = session.turns[0]
    assert turn.translated_from == "fr" and "caf" in turn.question.speech.transcript.lower()
    assert "coffee" in turn.answer.lower() and turn.answer.isascii()
    assert "French → English" in str(chat[1]["content"])
