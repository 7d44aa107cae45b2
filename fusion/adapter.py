"""The trained part: one projector per modality, saved as config JSON + safetensors.

A checkpoint records the identity (name + weights fingerprint) of the vision encoder, audio
encoder and language model it was trained against; loading it against any other is refused,
since its projections would be meaningless there.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from encoders.skip_init import skipped_init
from fusion.compress import CtcHead, compress
from fusion.int8_rows import from_int8_rows, to_int8_rows
from fusion.name_head import NameHead
from fusion.projector import Projector

CONFIG_FILE = "adapter.json"
WEIGHTS_FILE = "adapter.safetensors"
MODALITIES = ("image", "audio")
# Kept as int8 rows (int8_rows.py) in a shipped (float16) file: the audio projector, 13.6 MB
# of float16, which the default reading of a clip never runs (it reads Whisper's words). On
# 60 natural questions (assets/eval/spoken_questions.txt) in the held-out neural voice, the
# adapter's own greedy reading changed for 1 clip and its word error not at all (2026-12-03).
# Checkpoints stay float32.
INT8_STORED = ("projectors.audio.",)


class AdapterMismatchError(ValueError):
    """The adapter was trained against other encoders or another language model."""


@dataclass(frozen=True)
class AdapterConfig:
    image_dim: int  # vision encoder width C
    audio_dim: int  # audio encoder width C
    lm_dim: int  # language model embedding width D
    audio_stack: int = 4  # Whisper frames per LM token: 50 Hz -> 12.5 Hz
    image_stack: int = 1  # vision tokens per LM token
    hidden_dim: int | None = None  # MLP width; None: lm_dim
    audio_context_layers: int = 0  # Transformer layers after the audio MLP (see projector.py)
    audio_compress: bool = False  # CTC compression of the audio tokens (see compress.py)
    audio_snap: float | None = None  # runs read with at least this confidence become exact
    # token embeddings (compress.py); 0.0: every run; None: never
    audio_cues: bool = False  # learned scoped cue vectors before and after each clip's tokens
    image_label: bool = False  # the vision labeller's top label, as its words' embeddings,
    # follows each photo's projected tokens (encoders/vision_labels.py, fusion/model.py)
    image_names: list[str] | None = None  # the name head's names (name_head.py); when set,
    # its best name replaces the labeller's label in those words
    image_names_sure_above: float = 0.0  # below this probability the name is said with "perhaps"


@dataclass
class AdapterInfo:
    trained: bool  # False: randomly initialised, its answers about media are meaningless
    identities: dict[str, dict[str, str]]  # "vision" / "audio" / "lm" -> {"name", "fingerprint"}
    metrics: dict[str, float] = field(default_factory=dict)  # evaluation figures, when trained
    notes: str = ""


class Adapter(nn.Module):
    def __init__(self, config: AdapterConfig, info: AdapterInfo):
        super().__init__()
        self.config = config
        self.info = info
        self.projectors = nn.ModuleDict(
            {
                "image": Projector(
                    config.image_dim, config.lm_dim, config.image_stack, config.hidden_dim
                ),
                "audio": Projector(
                    config.audio_dim,
                    config.lm_dim,
                    config.audio_stack,
                    config.hidden_dim,
                    config.audio_context_layers,
                ),
            }
        )
        self.audio_ctc = CtcHead(config.lm_dim) if config.audio_compress else None
        self.image_names = (
            NameHead(config.image_dim, config.image_names, config.image_names_sure_above)
            if config.image_names
            else None
        )
        # Two learned LM-space cue vectors around each clip ([start, end], 2 x D). With snapped
        # tokens a spoken question reads exactly like the typed one; the cues tell text typed
        # with the clip ("Repeat exactly what I said.") that the words were heard, a 135M LM
        # does not repeat typed text. They are scoped: only that text sees them, and they take
        # no position (prompt_layout.py), so a clip alone is answered as the typed words.
        # Trained in train.py's cue stage.
        self.audio_cues = nn.Parameter(torch.zeros(2, config.lm_dim)) if config.audio_cues else None

    def project(self, kind: str, features: torch.Tensor, vocabulary: torch.Tensor) -> torch.Tensor:
        """One medium's features [1, T, C] -> LM input embeddings [T', D].

        vocabulary [V, D] is the LM's input embedding table (used by CTC compression).
        """
        tokens = self.projectors[kind](features)[0]  # T', D
        if kind == "audio" and self.audio_ctc is not None:
            labels, confidence = self.audio_ctc.read_frames(tokens, vocabulary)
            tokens = compress(tokens, labels, vocabulary, confidence, self.config.audio_snap)
        if kind == "audio":
            return self._with_cues(tokens)
        return tokens

    def audio_log_probs(self, features: torch.Tensor, vocabulary: torch.Tensor) -> torch.Tensor:
        """A clip's features [1, T, C] -> its frames' CTC log-probabilities [T', 1 + V]
        (class 0 blank, class v + 1 the LM's token v), for a reader that looks past the
        greedy read-out (fusion/speech_reading.py)."""
        if self.audio_ctc is None:
            raise ValueError("this adapter has no CTC head (audio_compress is off)")
        frames = self.projectors["audio"](features)[0]  # T', D
        return self.audio_ctc.log_probs(frames, vocabulary)

    def project_reading(self, token_ids: list[int], vocabulary: torch.Tensor) -> torch.Tensor:
        """A clip already read as LM tokens -> their exact embeddings [N, D] (as snapping every
        run gives), between the clip's cues when the adapter has them ([N + 2, D])."""
        if not token_ids:
            raise ValueError("a reading needs at least one token")
        ids = torch.tensor(token_ids, device=vocabulary.device)
        return self._with_cues(vocabulary[ids])

    def _with_cues(self, tokens: torch.Tensor) -> torch.Tensor:
        """[N, D] -> [N + 2, D] between the learned start and end cues, when the adapter has them."""
        if self.audio_cues is None:
            return tokens
        start, end = self.audio_cues.to(tokens.dtype).unbind(0)
        return torch.cat([start[None], tokens, end[None]])  # N + 2, D

    @classmethod
    def untrained(
        cls, config: AdapterConfig, identities: dict[str, dict[str, str]], seed: int = 0
    ) -> "Adapter":
        """A seeded random adapter: the pipeline runs end to end, but media answers are noise."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            adapter = cls(config, AdapterInfo(trained=False, identities=identities))
        return adapter.eval().requires_grad_(False)

    def save(self, directory: Path, dtype: torch.dtype = torch.float32) -> None:
        """dtype float16 halves a shipped adapter, and keeps INT8_STORED as int8 rows;
        checkpoints keep float32 to resume exactly."""
        self.save_info(directory)
        tensors = {name: t.to("cpu", dtype) for name, t in self.state_dict().items()}
        if dtype == torch.float16:
            tensors = to_int8_rows(tensors, INT8_STORED)
        save_file({name: t.contiguous() for name, t in tensors.items()}, directory / WEIGHTS_FILE)

    def save_info(self, directory: Path) -> None:
        """Write adapter.json only (config, identities, trained, metrics, notes)."""
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"config": asdict(self.config), **asdict(self.info)}
        (directory / CONFIG_FILE).write_text(json.dumps(payload, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path, identities: dict[str, dict[str, str]]) -> "Adapter":
        """Load a checkpoint, refusing it if it was trained against other models than `identities`."""
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(
                f"no adapter at {directory} (expected {CONFIG_FILE} and {WEIGHTS_FILE})"
            )
        payload = json.loads(config_path.read_text())
        fields = payload.pop("config")
        if "audio_boundary" in fields:  # saved before the cues had their name
            fields["audio_cues"] = fields.pop("audio_boundary")
        config = AdapterConfig(**fields)
        info = AdapterInfo(**payload)
        check_identities(info.identities, identities, directory)
        with skipped_init():  # every weight is loaded next (strict)
            adapter = cls(config, info)
        weights = from_int8_rows(load_file(directory / WEIGHTS_FILE))
        if "audio_boundary" in weights:
            weights["audio_cues"] = weights.pop("audio_boundary")
        adapter.load_state_dict({name: t.float() for name, t in weights.items()})
        return adapter.eval().requires_grad_(False)


def check_identities(trained_on: dict, loaded: dict, where: Path | str) -> None:
    for role in ("vision", "audio", "lm"):
        want, have = trained_on.get(role, {}), loaded.get(role, {})
        if want.get("fingerprint") != have.get("fingerprint"):
            raise AdapterMismatchError(
                f"the adapter at {where} was trained against {role} {want.get('name')!r} "
                f"(weights {want.get('fingerprint')}), but the loaded {role} is {have.get('name')!r} "
                f"(weights {have.get('fingerprint')}); train an adapter for this combination or "
                f"load the models it was trained with"
            )
