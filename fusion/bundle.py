"""Assembling a LunettesModel from model specs: the embedded bundle by default.

Each spec is "embedded" (weights carried by pip packages, see requirements/weights.txt), or
a hub id / local path for users who have them. `prepare` does the one-time conversions so
that later starts only load.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from encoders.audio import AudioEncoder
from encoders.cache import default_cache_dir
from encoders.errors import InputError
from encoders.fingerprint import fingerprint
from encoders.gemv import load_gemv
from encoders.packed_linear import pack_linears
from encoders.vision_models import load_vision_encoder
from encoders.whisper_model import load_whisper
from fusion.adapter import Adapter, AdapterConfig, AdapterMismatchError
from fusion.decode_step import fuse_blocks
from fusion.gguf_layers import gguf_blocks
from fusion.language_model import EMBEDDED, embedded_gguf, load_language_model, use_int4_weights
from fusion.model import LunettesModel
from fusion.row_linear import use_blocks, use_row_kernel

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
SHIPPED_ADAPTER = ASSETS_DIR / "adapter"
AUTO = "auto"
AUDIO_CONTEXT_LAYERS = 2  # see fusion/projector.py
# Every CTC run becomes its token's exact embedding (compress.py). On 60 held-out clips the
# shipped adapter's spoken answers matched the typed ones 68% of the time snapping every run,
# 53% snapping runs read with >= 0.3 confidence, 7% never snapping.
AUDIO_SNAP = 0.0
UNTRAINED = "untrained"
# The LM's linear layers: float32, with the prompts of photos prefilled in bfloat16 where this
# CPU has bfloat16 instructions; float32 throughout; or the embedded GGUF's own 4-bit.
DTYPES = ("bf16-photos", "fp32", "int4")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleSpec:
    lm: str = "embedded"  # "embedded", a transformers hub id or a local directory
    vision: str = "embedded"  # "embedded", "MODEL:PRETRAINED" (open_clip) or "MODEL:/path.pt"
    audio: str = "embedded"  # "embedded", a Whisper size ("base", ...) or a checkpoint path
    adapter: str = AUTO  # "auto": the shipped adapter when it fits; "untrained"; or a directory
    cache_dir: Path | None = None  # converted weights; None: $LUNETTES_CACHE or ~/.cache/lunettes
    dtype: str = DTYPES[0]  # the LM's linear layers: one of DTYPES


def load_model(spec: BundleSpec = BundleSpec()) -> LunettesModel:
    cache_dir = spec.cache_dir or default_cache_dir()
    lm, tokenizer, lm_name = load_language_model(spec.lm, cache_dir)
    lm_fingerprint = fingerprint(lm)  # of the float weights, whatever runs them
    if spec.dtype == "int4":
        use_int4_weights(lm, spec.lm, cache_dir)
    elif spec.dtype not in DTYPES:
        raise InputError(f"dtype must be {' or '.join(DTYPES)}, not {spec.dtype!r}")
    # the layers still nn.Linear (all, or the output head)
    gguf_file = embedded_gguf() if spec.lm == EMBEDDED else None
    speed_up_decoding(lm, cache_dir, spec.dtype == "bf16-photos", gguf_file)
    vision = load_vision_encoder(spec.vision)
    whisper, whisper_name = load_whisper(spec.audio, cache_dir)
    audio = AudioEncoder(whisper, whisper_name)
    identities = {
        "vision": vision.identity,
        "audio": audio.identity,
        "lm": {"name": lm_name, "fingerprint": lm_fingerprint},
    }
    config = AdapterConfig(
        image_dim=vision.dim,
        audio_dim=audio.dim,
        lm_dim=lm.get_input_embeddings().embedding_dim,
        audio_context_layers=AUDIO_CONTEXT_LAYERS,
        audio_compress=True,
        audio_snap=AUDIO_SNAP,
        audio_cues=True,
        image_label=vision.labeller is not None,
    )
    adapter = load_adapter(spec.adapter, config, identities)
    return LunettesModel(lm, tokenizer, vision, audio, adapter, lm_name=lm_name)


def speed_up_decoding(
    lm, cache_dir: Path, prompts_in_bfloat16: bool = False, gguf_file: Path | None = None
) -> str:
    """Give the LM's float32 linear layers the fastest products available here; returns which:
    "blocks+packed" or "kernel+packed" (one row through gemv.py, from the GGUF file's blocks
    or from float32; more rows through oneDNN's packed weights), "blocks", "kernel", "packed"
    (encoders/packed_linear.py) or "torch". prompts_in_bfloat16: the packed layers also get a
    bfloat16 copy for prompts (prefill.py), where this CPU has bfloat16 instructions.
    gguf_file: the file the LM's float32 weights were dequantized from, if any."""
    prompt_dtype = torch.bfloat16 if prompts_in_bfloat16 else None
    packed = pack_linears(lm, prompt_dtype=prompt_dtype) > 0
    gemv = load_gemv(cache_dir)
    if gemv is None or use_row_kernel(lm, gemv) == 0:
        return "packed" if packed else "torch"
    single = "kernel"
    if gguf_file is not None and gemv.blocks_vectorised:
        entry = cache_dir / f"{gguf_file.stem}-blocks"
        if use_blocks(lm, gguf_blocks(lm, gguf_file, entry)) > 0:
            single = "blocks"
            fuse_blocks(lm)  # a decode step of up to 8 rows in a plain loop (decode_step.py)
    return f"{single}+packed" if packed else single


def load_adapter(spec: str, config: AdapterConfig, identities: dict) -> Adapter:
    """An explicit directory must fit the models (else AdapterMismatchError); "auto" falls back
    to an untrained adapter, saying so, when the shipped one does not fit or does not exist;
    "untrained" asks for the seeded random adapter (a baseline, or the start of training)."""
    if spec == UNTRAINED:
        return Adapter.untrained(config, identities)
    if spec != AUTO:
        return Adapter.load(Path(spec), identities)
    if (SHIPPED_ADAPTER / "adapter.json").is_file():
        try:
            return Adapter.load(SHIPPED_ADAPTER, identities)
        except AdapterMismatchError as error:
            log.warning("shipped adapter not used: %s", error)
    return Adapter.untrained(config, identities)


def prepare(cache_dir: Path | None = None) -> LunettesModel:
    """Convert the embedded weights once (LM from GGUF, Whisper from CTranslate2) and load them."""
    return load_model(BundleSpec(cache_dir=cache_dir))
