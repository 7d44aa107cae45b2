"""python -m fusion.training {data,train,eval}: build the cached sets, train the adapter, evaluate it."""

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from encoders.cache import default_cache_dir
from fusion.adapter import Adapter
from fusion.bundle import ASSETS_DIR, UNTRAINED, BundleSpec, load_model

DEFAULT_OUTPUT = ASSETS_DIR / "adapter"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion.training", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", type=Path, help="weights and training data cache")
    common.add_argument(
        "--clips-per-question", type=int, default=4, help="training voices per question"
    )
    common.add_argument(
        "--limit", type=int, help="use at most this many questions/images per set (smoke runs)"
    )
    common.add_argument(
        "--align-clips",
        type=int,
        default=7000,
        help="extra many-voice clips for the speech alignment stage (align_data.py)",
    )
    common.add_argument(
        "--vocab-clips",
        type=int,
        default=8000,
        help="clips of dictionary words for the speech alignment stage (vocab_data.py)",
    )
    common.add_argument(
        "--slot-clips",
        type=int,
        default=4000,
        help="clips of question templates with random words for the alignment stage",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "data", parents=[common], help="synthesize, encode and label the training and held-out sets"
    )
    train = commands.add_parser(
        "train", parents=[common], help="train the adapter (resumes from the checkpoint)"
    )
    train.add_argument("--steps", type=int, default=2000)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument(
        "--align-steps", type=int, default=8000, help="speech alignment (CTC) steps first"
    )
    train.add_argument(
        "--boundary-steps", type=int, default=150, help="clip cue steps last (adapter.py)"
    )
    train.add_argument(
        "--boundary-answer-weight",
        type=float,
        default=1.0,
        help="weight of the follow-ups' KL against the repeats' loss in the boundary stage",
    )
    train.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint directory to resume from and save to (default: <cache>/training/checkpoint)",
    )
    train.add_argument(
        "--out", type=Path, default=DEFAULT_OUTPUT, help="where the finished adapter goes"
    )
    train.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N; auto: cuda when there is one"
    )
    train.add_argument(
        "--smoke", action="store_true", help="a seconds-long run on 3 questions/images (tests)"
    )
    evaluate = commands.add_parser(
        "eval", parents=[common], help="evaluate an adapter against the untrained baseline"
    )
    evaluate.add_argument("--adapter", type=Path, default=DEFAULT_OUTPUT)
    evaluate.add_argument(
        "--speech-limit",
        type=int,
        default=None,
        help="held-out spoken questions (default: all 242)",
    )
    evaluate.add_argument("--vision-limit", type=int, default=200, help="held-out images")
    args = parser.parse_args(argv)
    if getattr(args, "smoke", False):
        args.limit, args.steps, args.batch_size, args.align_steps = 3, 3, 2, 2
        args.boundary_steps, args.align_clips, args.vocab_clips, args.slot_clips = 2, 4, 3, 3

    cache = (args.cache_dir or default_cache_dir()) / "training"
    model = load_model(BundleSpec(cache_dir=args.cache_dir, adapter=UNTRAINED))
    sets = load_sets(
        model,
        cache,
        args.clips_per_question,
        args.limit,
        need_train=args.command != "eval",
        align_clips=args.align_clips,
        vocab_clips=args.vocab_clips,
        slot_clips=args.slot_clips,
    )
    if args.command == "data":
        print({name: len(items) for name, items in sets.items()})
        return 0
    if args.command == "train":
        from fusion.training.train import TrainConfig
        from fusion.training.train import train as run_training

        config = TrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            align_steps=args.align_steps,
            boundary_steps=args.boundary_steps,
            boundary_answer_weight=args.boundary_answer_weight,
        )
        checkpoint = args.checkpoint or cache / "checkpoint"
        run_training(
            model,
            sets["speech-train"],
            sets["vision-train"],
            config,
            checkpoint,
            training_device(args.device),
            align_extra=sets["speech-align"] + sets["speech-vocab"] + sets["speech-slots"],
        )
        model.adapter.info.trained = True
        model.adapter.info.notes = (
            f"trained {config.align_steps} alignment steps (batch {config.align_batch_size}) "
            f"+ {config.steps} steps (batch {config.batch_size}) "
            f"+ {config.boundary_steps} cue steps"
        )
        model.adapter.save(args.out, dtype=torch.float16)
        print(f"adapter saved to {args.out}")
        return 0
    return run_eval(model, sets, args)


def load_sets(
    model,
    cache: Path,
    clips_per_question: int,
    limit: int | None,
    need_train: bool,
    align_clips: int = 0,
    vocab_clips: int = 0,
    slot_clips: int = 0,
) -> dict:
    from fusion.training.align_data import build_align_set
    from fusion.training.speech_data import build_speech_set
    from fusion.training.vision_data import build_vision_set
    from fusion.training.vocab_data import slot_texts, vocabulary_texts

    suffix = f"-limit{limit}" if limit else ""
    sets = {
        "speech-eval": build_speech_set(
            model, "eval", cache / f"speech-eval{suffix}.pt", 2, limit=limit
        ),
        "vision-eval": build_vision_set(
            model, "eval", cache / f"vision-eval{suffix}.pt", limit=limit
        ),
    }
    if need_train:
        sets["speech-train"] = build_speech_set(
            model, "train", cache / f"speech-train{suffix}.pt", clips_per_question, limit=limit
        )
        sets["vision-train"] = build_vision_set(
            model, "train", cache / f"vision-train{suffix}.pt", limit=limit
        )
        sets["speech-align"] = (
            build_align_set(model, cache / f"speech-align-{align_clips}.pt", align_clips)
            if align_clips
            else []
        )
        made = {
            "speech-vocab": (vocabulary_texts(model.tokenizer, 1, vocab_clips), 1, vocab_clips),
            "speech-slots": (slot_texts(model.tokenizer, 2, slot_clips), 2, slot_clips),
        }
        for name, (texts, seed, count) in made.items():
            sets[name] = (
                build_align_set(
                    model,
                    cache / f"{name}-{count}.pt",
                    len(texts),
                    seed=seed,
                    texts=texts,
                    description=name.replace("-", " "),
                )
                if texts
                else []
            )
    return sets


def training_device(requested: str) -> str:
    """The device to train on: "auto" is "cuda" when torch sees a GPU, else "cpu"."""
    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_eval(model, sets: dict, args) -> int:
    from fusion.training.evaluate import evaluate

    speech, vision = (
        sets["speech-eval"][: args.speech_limit],
        sets["vision-eval"][: args.vision_limit],
    )
    rows = [("untrained (baseline)", evaluate(model, speech, vision))]
    if (args.adapter / "adapter.json").is_file():
        trained = Adapter.load(args.adapter, model.adapter.info.identities)
        model.adapter = trained
        reading, model.speech_reading = model.speech_reading, None
        greedy = evaluate(model, speech, [])
        model.speech_reading = reading
        scores = evaluate(model, speech, vision)
        rows.append((f"{args.adapter.name}, greedy reading, speech only", greedy))
        rows.append((f"{args.adapter.name} ({trained.info.notes})", scores))
        trained.info.metrics = {k: round(v, 4) for k, v in asdict(scores).items()}
        trained.save_info(args.adapter)  # every surface reports these figures with the adapter
    print(
        f"held out: {len(speech)} spoken questions ({len({e.voice for e in speech})} unseen voices), "
        f"{len(vision)} images"
    )
    print(
        f"{'adapter':<48} {'speech answer agreement':>24} {'repeat WER':>11} {'vision naming':>14}"
    )
    for name, s in rows:
        vision_naming = f"{s.vision_naming:.1%}" if s.images else "-"
        print(f"{name:<48} {s.answer_agreement:>23.1%} {s.repeat_wer:>10.1%} {vision_naming:>13}")
    print(
        "speech is read as the adapter's likeliest readings rescored by Whisper's decoder "
        "(fusion/speech_reading.py); the greedy row reads the adapter's CTC alone"
    )
    print("targets: agreement >= 80%, repeat WER <= 15%, vision naming >= 60%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
