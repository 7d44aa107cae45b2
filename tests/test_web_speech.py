"""Spoken answers: what is said, and the WAV the local engines write."""

import shutil

import pytest
import soundfile

from app import speech_out


def test_speakable_drops_markdown_emoji_and_control_characters():
    text = "**Bold** answer 👓 with `code`\x17 and\n\n# a heading ⚠️"
    assert speech_out.speakable(text) == "Bold answer with code and a heading"


def test_speakable_cuts_long_text_after_a_sentence():
    sentence = "This is one sentence of the answer. "
    text = speech_out.speakable(sentence * 100)
    assert len(text) <= speech_out.MAX_CHARS
    assert text.endswith(".")


def test_nothing_to_say_writes_nothing(tmp_path):
    assert speech_out.synthesise("👓 ``` code only ```", tmp_path / "x.wav") == 0.0
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize("engine", ["espeak-ng", "flite"])
def test_each_installed_engine_writes_a_wav(tmp_path, engine):
    if shutil.which(engine) is None:
        pytest.skip(f"{engine} is not installed")
    path = tmp_path / "answer.wav"
    seconds = speech_out.synthesise("-v The cat sits on the mat.", path, engine=engine)
    assert 0.5 < seconds < 10  # the leading "-v" was read as text, not as an option
    info = soundfile.info(str(path))
    assert info.frames / info.samplerate == pytest.approx(seconds)


def test_engine_choice_prefers_flite_for_english_only(monkeypatch):
    monkeypatch.setattr(speech_out, "available_engines", lambda: ["flite", "espeak-ng"])
    assert speech_out.engine_for("The cat sits on the mat.") == "flite"
    assert speech_out.engine_for("Ceci est un café très étonnant, déjà vu à l'été") == "espeak-ng"
    monkeypatch.setattr(speech_out, "available_engines", list)
    assert speech_out.engine_for("hello") is None
    with pytest.raises(speech_out.SpeechError, match="no speech engine"):
        speech_out.synthesise("hello", speech_out.Path("/tmp/never.wav"))
