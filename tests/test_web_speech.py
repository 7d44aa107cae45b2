"""Spoken answers: what is said, and the WAV the local engines write."""

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


@pytest.mark.parametrize("engine", ["piper", "espeak-ng", "flite"])
def test_each_installed_engine_writes_a_wav(tmp_path, engine):
    if engine not in speech_out.available_engines():  # make test installs all three
        pytest.skip(f"{engine} is not installed")
    path = tmp_path / "answer.wav"
    seconds = speech_out.synthesise("-v The cat sits on the mat.", path, engine=engine)
    assert 0.5 < seconds < 10  # the leading "-v" was read as text, not as an option
    info = soundfile.info(str(path))
    assert info.frames / info.samplerate == pytest.approx(seconds)


@pytest.mark.parametrize("engine", ["piper", "espeak-ng", "flite"])
def test_speed_changes_the_pace(engine):
    if engine not in speech_out.available_engines():
        pytest.skip(f"{engine} is not installed")
    text = "The train to Lyon leaves from platform four at nine."
    normal, rate = speech_out.speak(text, engine)
    fast, fast_rate = speech_out.speak(text, engine, speed=1.6)
    assert rate == fast_rate and normal.dtype == fast.dtype == "float32"
    assert 0.45 < len(fast) / len(normal) < 0.85
    with pytest.raises(ValueError, match="speed"):
        speech_out.speak(text, engine, speed=9.0)


def test_the_neural_voice_is_preferred_for_english(monkeypatch):
    monkeypatch.setattr(speech_out, "available_engines", lambda: ["piper", "flite", "espeak-ng"])
    assert speech_out.engine_for("The cat sits on the mat.") == "piper"
    assert speech_out.engine_for("Ceci est un café très étonnant, déjà vu à l'été") == "espeak-ng"


def test_engine_choice_prefers_flite_for_english_only(monkeypatch):
    monkeypatch.setattr(speech_out, "available_engines", lambda: ["flite", "espeak-ng"])
    assert speech_out.engine_for("The cat sits on the mat.") == "flite"
    assert speech_out.engine_for("Ceci est un café très étonnant, déjà vu à l'été") == "espeak-ng"
    monkeypatch.setattr(speech_out, "available_engines", list)
    assert speech_out.engine_for("hello") is None
    with pytest.raises(speech_out.SpeechError, match="no speech engine"):
        speech_out.synthesise("hello", speech_out.Path("/tmp/never.wav"))
