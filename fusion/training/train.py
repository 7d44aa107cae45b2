"""The training loop: only the adapter learns; checkpoints and resumes.

Three stages. First, speech alignment: the audio projector and its CTC head learn, with a CTC
loss alone (align.py), to map each spoken token's frames near that token's LM embedding;
this needs no LM pass, so its steps are cheap and large. Then the main stage: each step
draws a batch of tasks (tasks.py) from the cached speech and vision examples, builds the LM
inputs exactly as inference does (LunettesModel.build_inputs, compression included), appends
the target answer, and minimises cross-entropy on the answer tokens only, plus the CTC and
embedding losses on the batch's speech. What each loss reaches: the LM's cross-entropy
trains the image projector and the cues; it does not reach the audio projector, because
snapping (audio_snap 0.0) replaces every read run with the exact embedding of its token, a
choice with no gradient. The audio projector and its CTC head learn from the CTC and
embedding losses alone (align.py).
Last, the cue stage: only the adapter's two scoped cue vectors learn, so that the
LM repeats spoken words when asked and answers typed follow-ups about a clip as it would typed
(cue_loss); a clip alone never sees them (prompt_layout.py). The LM runs in bfloat16
autocast (on CPU with AVX512-BF16 about 4x faster than float32; CUDA when present).

Letters: B batch, L sequence length, D LM width, V vocabulary.
"""

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from fusion.adapter import Adapter
from fusion.conversation import Message
from fusion.model import LunettesModel
from fusion.prompt_layout import PromptLayout, continued_positions, extended_attention
from fusion.training.align import alignment_losses, ctc_loss, spoken_token_ids
from fusion.training.tasks import (
    FOLLOW_UPS,
    REPEAT_PROMPT,
    speech_media,
    speech_task,
    vision_task,
)

STATE_FILE = "training_state.json"
OPTIMIZER_FILE = "optimizer.pt"
ALIGN_OPTIMIZER_FILE = "align-optimizer.pt"
CUE_OPTIMIZER_FILE = "cue-optimizer.pt"


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000  # optimisation steps in all (a resumed run continues to this total)
    batch_size: int = 8
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    speech_share: float = 0.5  # share of each batch drawn from speech examples
    checkpoint_every: int = 50  # steps between checkpoints
    seed: int = 0
    align_steps: int = 8000  # speech alignment steps (CTC only) before the main stage
    align_batch_size: int = 32
    ctc_weight: float = 0.5  # weight of the CTC loss in the main stage
    embedding_weight: float = 1.0  # weight of the embedding loss (align.alignment_losses)
    embedding_from_step: int = 0  # main-stage step from which the embedding loss counts
    cue_steps: int = 150  # last stage: only the clip cue vectors learn (adapter.py)
    cue_learning_rate: float = 3e-3
    cue_answer_share: float = 0.5  # of the cue stage's clips: follow-ups; the rest: repeat
    cue_answer_weight: float = 1.0  # of the follow-ups' KL against the repeats' cross-entropy


def train(
    model: LunettesModel,
    speech: list,
    vision: list,
    config: TrainConfig,
    checkpoint_dir: Path,
    device: str = "cpu",
    align_extra: list | None = None,
) -> Adapter:
    """Train model.adapter in place from `checkpoint_dir` (resuming if it holds a checkpoint).

    align_extra: more speech (align_data.py) for the alignment stage only: it has no answers.
    Clips are read greedily while training (speech_reading off), by the adapter's own CTC
    head, so that the tasks see the adapter's reading rather than Whisper's.
    device "cuda": the LM and the adapter move there for training (the LM's forward in
    bfloat16 autocast) and back to where they were afterwards; cached features stay on the
    CPU and travel per batch.
    """
    reading, model.speech_reading = model.speech_reading, None
    home = model.lm.get_input_embeddings().weight.device
    model.lm.to(device)
    model.adapter.to(device)
    try:
        return _train(model, speech, vision, config, checkpoint_dir, device, align_extra)
    finally:
        model.speech_reading = reading
        model.lm.to(home)
        model.adapter.to(home)


def _train(model, speech, vision, config, checkpoint_dir, device, align_extra) -> Adapter:
    adapter = model.adapter
    state = _resume(adapter, checkpoint_dir)
    adapter.train().requires_grad_(True)
    vocabulary = model.lm.get_input_embeddings().weight.detach()  # V, D (frozen)

    def spoken(text: str) -> list[int]:
        return spoken_token_ids(model.tokenizer, text)

    if speech and adapter.audio_ctc is not None and state["align_step"] < config.align_steps:
        pool = speech + list(align_extra or [])
        align_speech(adapter, pool, spoken, vocabulary, config, checkpoint_dir, state)
    step = state["step"]
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=config.learning_rate, weight_decay=0.01)
    if (checkpoint_dir / OPTIMIZER_FILE).is_file() and 0 < step < config.steps:
        optimizer.load_state_dict(torch.load(checkpoint_dir / OPTIMIZER_FILE, weights_only=True))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s + step, config))
    eos = model.tokenizer.eos_token_id

    def encode(text: str) -> list[int]:
        return model.tokenizer.encode(text, add_special_tokens=False)

    progress = tqdm(total=config.steps, initial=step, desc="training", unit="step")
    losses: list[float] = []
    last_checkpoint = time.perf_counter()
    while step < config.steps:
        rng = random.Random(
            config.seed * 1_000_003 + step
        )  # batch content depends only on the step
        batch, clips = [], []
        for _ in range(config.batch_size):
            if speech and (not vision or rng.random() < config.speech_share):
                clips.append(rng.choice(speech))
                messages, target = speech_task(clips[-1], rng, encode)
            else:
                messages, target = vision_task(rng.choice(vision), rng, encode)
            batch.append((messages, target + [eos]))
        loss = batch_loss(model, batch, device)
        if clips and adapter.audio_ctc is not None:
            with_embedding = step >= config.embedding_from_step
            ctc, embedding = alignment_losses(
                adapter,
                [c.features for c in clips],
                [spoken(c.text) for c in clips],
                vocabulary,
                torch.Generator().manual_seed(step),
                embedding=with_embedding,
            )
            loss = loss + config.ctc_weight * ctc
            if with_embedding:
                loss = loss + config.embedding_weight * embedding
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(adapter.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        losses.append(loss.item())
        progress.update(1)
        progress.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
        if step % config.checkpoint_every == 0 or step == config.steps:
            _checkpoint(
                adapter,
                optimizer,
                step,
                losses,
                config,
                checkpoint_dir,
                time.perf_counter() - last_checkpoint,
            )
            last_checkpoint = time.perf_counter()
    progress.close()
    if speech and adapter.audio_cues is not None:
        if (checkpoint_dir / STATE_FILE).is_file():  # as the main stage's checkpoints left it
            state = _read_state(checkpoint_dir)
        train_cues(model, speech, config, checkpoint_dir, state, device)
    return adapter.eval().requires_grad_(False)


def train_cues(model, speech, config, checkpoint_dir, state, device) -> None:
    """The cue stage: only the two cue vectors around each clip learn (cue_loss).
    They are scoped (prompt_layout.py): a clip alone reads exactly as the typed words, and only
    text typed with the clip sees them, so they must make "Repeat exactly what I said." repeat
    the words, yet leave other typed follow-ups answered as they are typed."""
    adapter = model.adapter
    step = state.get("cue_step", 0)
    if step >= config.cue_steps:
        return
    vocabulary = model.lm.get_input_embeddings().weight.detach()  # V, D
    if step == 0:  # start as an average token: a neutral place for the LM
        adapter.audio_cues.data.copy_(vocabulary.mean(0).expand(2, -1))
    adapter.requires_grad_(False)
    adapter.audio_cues.requires_grad_(True)
    optimizer = torch.optim.AdamW([adapter.audio_cues], lr=config.cue_learning_rate)
    if (checkpoint_dir / CUE_OPTIMIZER_FILE).is_file() and step > 0:
        optimizer.load_state_dict(
            torch.load(checkpoint_dir / CUE_OPTIMIZER_FILE, weights_only=True)
        )
    progress = tqdm(total=config.cue_steps, initial=step, desc="cues", unit="step")
    losses: list[float] = []
    started = time.perf_counter()
    while step < config.cue_steps:
        rng = random.Random(config.seed * 1_000_003 + 900_000_000 + step)
        for group in optimizer.param_groups:
            group["lr"] = config.cue_learning_rate * _lr_factor(step, config, config.cue_steps)
        loss = cue_loss(
            model, [rng.choice(speech) for _ in range(config.batch_size)], rng, config, device
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        losses.append(loss.item())
        progress.update(1)
        progress.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
        if step % config.checkpoint_every == 0 or step == config.cue_steps:
            state["cue_step"] = step
            state["cue_loss"] = sum(losses[-50:]) / len(losses[-50:])
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            torch.save(optimizer.state_dict(), checkpoint_dir / CUE_OPTIMIZER_FILE)
            _save_state(adapter, checkpoint_dir, state, config, time.perf_counter() - started)
            started = time.perf_counter()
    progress.close()


def cue_loss(model, clips: list, rng: random.Random, config, device: str) -> torch.Tensor:
    """Repeat tasks: cross-entropy on the words said. Follow-up tasks (the clip + a typed
    FOLLOW_UPS line): KL divergence from the LM's own next-token distributions for the same
    question and line typed (the teacher, no gradient) at every position of the typed
    question's answer, so the cues say "this was said", not "repeat it"."""
    eos = model.tokenizer.eos_token_id
    spoken, typed, repeats = [], [], []
    for clip in clips:
        if rng.random() < config.cue_answer_share:
            follow_up = rng.choice(FOLLOW_UPS)
            target = list(clip.answer_ids) + [eos]
            spoken.append(([Message("user", follow_up, speech=speech_media(clip))], target))
            typed.append(([Message("user", f"{clip.text}\n{follow_up}")], target))
        else:
            said = model.tokenizer.encode(clip.text, add_special_tokens=False) + [eos]
            repeats.append(([Message("user", REPEAT_PROMPT, speech=speech_media(clip))], said))
    loss = torch.zeros(())
    if repeats:
        loss = loss + batch_loss(model, repeats, device)
    if spoken:
        student, _ = target_logits(model, spoken, device)  # targets, V
        with torch.no_grad():
            teacher, _ = target_logits(model, typed, device)
        divergence = torch.nn.functional.kl_div(
            student.float().log_softmax(-1),
            teacher.float().log_softmax(-1),
            log_target=True,
            reduction="batchmean",
        )
        loss = loss + config.cue_answer_weight * divergence
    return loss


def batch_loss(
    model: LunettesModel, batch: list[tuple[list, list[int]]], device: str
) -> torch.Tensor:
    """Mean cross-entropy of the target tokens given the conversation, over a padded batch."""
    logits, labels = target_logits(model, batch, device)
    return torch.nn.functional.cross_entropy(logits.float(), labels)


def target_logits(
    model: LunettesModel, batch: list[tuple[list, list[int]]], device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The LM's logits at every target position (teacher-forced) [targets, V], and the target
    ids [targets], over a padded batch of (conversation, target ids)."""
    embed = model.lm.get_input_embeddings()
    rows, labels, layouts = [], [], []
    for messages, target in batch:
        prompt_inputs = model.build_inputs(messages)
        prompt = prompt_inputs.embeddings[0]  # L, D (gradients reach the projectors)
        target_ids = torch.tensor(target, device=prompt.device)
        rows.append(torch.cat([prompt, embed(target_ids)]))  # L + T, D
        layouts.append(prompt_inputs.layout)
        # position i predicts token i + 1: the last prompt position predicts the first target
        labels.append(
            torch.cat(
                [torch.full((prompt.shape[0] - 1,), -100), target_ids.cpu(), torch.tensor([-100])]
            )
        )
    width = max(row.shape[0] for row in rows)
    inputs = torch.zeros(
        len(rows), width, rows[0].shape[1], device=device
    )  # B, L, D (right padding)
    mask = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    label_matrix = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (row, label) in enumerate(zip(rows, labels)):
        inputs[i, : row.shape[0]] = row
        mask[i, : row.shape[0]] = 1
        label_matrix[i, : label.shape[0]] = label
    scoped = (
        scoped_batch(layouts, [row.shape[0] for row in rows], width, device)
        if any(layout is not None for layout in layouts)
        else {"attention_mask": mask}
    )
    with torch.autocast(
        device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16
    ):
        hidden = model.lm.model(inputs_embeds=inputs, **scoped).last_hidden_state  # B, L, D
        selected = label_matrix.to(device) != -100
        logits = model.lm.lm_head(hidden[selected])  # targets, V
    return logits, label_matrix.to(device)[selected]


def scoped_batch(
    layouts: list[PromptLayout | None], lengths: list[int], width: int, device: str
) -> dict[str, torch.Tensor]:
    """attention_mask [B, 1, W, W] bool and position_ids [B, W] for a right-padded batch whose
    prompts may hold scoped tokens (prompt_layout.py); targets continue each prompt. A padding
    row sees only itself (a row that sees nothing would give NaN)."""
    attention = torch.eye(width, dtype=torch.bool).repeat(len(lengths), 1, 1)  # B, W, W
    positions = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, (prompt, total) in enumerate(zip(layouts, lengths)):
        if prompt is None:
            attention[i, :total, :total] = torch.ones(total, total, dtype=torch.bool).tril()
            positions[i, :total] = torch.arange(total)
        else:
            attention[i, :total, :total] = extended_attention(prompt, total)
            positions[i, :total] = continued_positions(prompt, total)
    return {"attention_mask": attention[:, None].to(device), "position_ids": positions.to(device)}


def _lr_factor(step: int, config: TrainConfig, total: int | None = None) -> float:
    """Linear warm-up, then cosine decay to 10% at `total` steps (default: config.steps)."""
    total = config.steps if total is None else total
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _read_state(checkpoint_dir: Path) -> dict:
    """The checkpoint's training state; older checkpoints named the cue stage "boundary"."""
    state = json.loads((checkpoint_dir / STATE_FILE).read_text())
    for old in ("boundary_step", "boundary_loss"):
        if old in state:
            state[old.replace("boundary", "cue")] = state.pop(old)
    if (checkpoint_dir / "boundary-optimizer.pt").is_file():
        (checkpoint_dir / "boundary-optimizer.pt").rename(checkpoint_dir / CUE_OPTIMIZER_FILE)
    return state


def _resume(adapter: Adapter, checkpoint_dir: Path) -> dict:
    """The saved state ({"step", "align_step", ...}), the adapter restored; zeros when none."""
    state_path = checkpoint_dir / STATE_FILE
    if not state_path.is_file():
        return {"step": 0, "align_step": 0}
    resumed = Adapter.load(checkpoint_dir, adapter.info.identities)  # refuses other models
    missing, unexpected = adapter.load_state_dict(resumed.state_dict(), strict=False)
    if unexpected or set(missing) - {"audio_cues"}:
        raise ValueError(
            f"the checkpoint at {checkpoint_dir} does not fit this adapter: missing {missing}, "
            f"unexpected {unexpected}"
        )  # a checkpoint from before the cue vectors existed resumes; they start later
    state = _read_state(checkpoint_dir)
    state.setdefault("align_step", 0)
    print(
        f"resuming from alignment step {state['align_step']}, step {state['step']} ({checkpoint_dir})"
    )
    return state


def align_speech(adapter, speech, spoken, vocabulary, config, checkpoint_dir, state) -> None:
    """The alignment stage: CTC alone on the audio projector and its head, until align_steps."""
    parameters = [*adapter.projectors["audio"].parameters(), *adapter.audio_ctc.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=0.01)
    if (checkpoint_dir / ALIGN_OPTIMIZER_FILE).is_file() and state["align_step"] > 0:
        optimizer.load_state_dict(
            torch.load(checkpoint_dir / ALIGN_OPTIMIZER_FILE, weights_only=True)
        )
    step = state["align_step"]
    progress = tqdm(total=config.align_steps, initial=step, desc="speech alignment", unit="step")
    losses: list[float] = []
    started = time.perf_counter()
    while step < config.align_steps:
        rng = random.Random(config.seed * 1_000_003 + 500_000_000 + step)
        clips = [rng.choice(speech) for _ in range(config.align_batch_size)]
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * _lr_factor(step, config, config.align_steps)
        loss = ctc_loss(
            adapter,
            [c.features for c in clips],
            [spoken(c.text) for c in clips],
            vocabulary,
            torch.Generator().manual_seed(step),
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        step += 1
        losses.append(loss.item())
        progress.update(1)
        progress.set_postfix(ctc=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
        if step % (2 * config.checkpoint_every) == 0 or step == config.align_steps:
            state["align_step"] = step
            state["align_loss"] = sum(losses[-50:]) / len(losses[-50:])
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
            torch.save(optimizer.state_dict(), checkpoint_dir / ALIGN_OPTIMIZER_FILE)
            _save_state(adapter, checkpoint_dir, state, config, time.perf_counter() - started)
            started = time.perf_counter()
    progress.close()


def _checkpoint(adapter, optimizer, step, losses, config, directory: Path, seconds: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(optimizer.state_dict(), directory / OPTIMIZER_FILE)
    state = (
        json.loads((directory / STATE_FILE).read_text())
        if (directory / STATE_FILE).is_file()
        else {}
    )
    state.update(step=step, recent_loss=sum(losses[-50:]) / max(1, len(losses[-50:])))
    state.setdefault("align_step", 0)
    _save_state(adapter, directory, state, config, seconds)


def _save_state(adapter, directory: Path, state: dict, config, seconds: float) -> None:
    """Adapter weights + training_state.json (with the training time so far)."""
    directory.mkdir(parents=True, exist_ok=True)
    adapter.info.notes = (
        f"training checkpoint at alignment step {state['align_step']} of {config.align_steps}, "
        f"step {state.get('step', 0)} of {config.steps}, "
        f"cue step {state.get('cue_step', 0)} of {config.cue_steps}"
    )
    adapter.save(directory)
    state["config"] = asdict(config)
    state["train_seconds"] = round(state.get("train_seconds", 0.0) + seconds, 1)
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
