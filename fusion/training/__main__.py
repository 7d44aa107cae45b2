"""python -m fusion.training {data,train,eval}: build the cached sets, train the adapter, evaluate it."""

import argparse
import sys
from pathlib import Path

import torch

from encoders.cache import default_cache_dir
from fusion.adapter import Adapter
from fusion.bundle import ASSETS_DIR, DTYPES, UNTRAINED, BundleSpec, load_model

DEFAULT_OUTPUT = ASSETS_DIR / "adapter"
NAME_HEAD_NOTE = " + a name head on named drawings and icons"
FULL_VISION, FULL_SIGNS = 200, 120  # the full held-out image and sign sets of `lunettes eval`


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion.training", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", type=Path, help="weights and training data cache")
    common.add_argument(
        "--data-dir",
        type=Path,
        help="the cached training and held-out sets (default: <cache>/training)",
    )
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
        "--cue-steps", type=int, default=150, help="clip cue steps last (adapter.py)"
    )
    train.add_argument(
        "--cue-answer-weight",
        type=float,
        default=1.0,
        help="weight of the follow-ups' KL against the repeats' loss in the cue stage",
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
    names = commands.add_parser(
        "names", parents=[common], help="train the adapter's name head on named drawings"
    )
    names.add_argument("--adapter", type=Path, default=DEFAULT_OUTPUT, help="adapter to extend")
    evaluate = commands.add_parser(
        "eval", parents=[common], help="evaluate an adapter against the untrained baseline"
    )
    evaluate.add_argument("--adapter", type=Path, default=DEFAULT_OUTPUT)
    evaluate.add_argument(
        "--speech-limit",
        type=int,
        default=None,
        help="clips per held-out speech set (default: all)",
    )
    evaluate.add_argument(
        "--vision-limit", type=int, default=FULL_VISION, help="images per held-out image set"
    )
    evaluate.add_argument("--sign-limit", type=int, default=FULL_SIGNS, help="held-out signs")
    evaluate.add_argument(
        "--adapter-reading",
        action="store_true",
        help="also the row of the adapter's own CTC reading alone (a third longer)",
    )
    evaluate.add_argument(
        "--dtype",
        choices=DTYPES,
        default=DTYPES[0],
        help="the LM's linear layers, as `lunettes --dtype` (fp32 and int4: the quality "
        f"check; the saved figures are those of the default, {DTYPES[0]})",
    )
    args = parser.parse_args(argv)
    if getattr(args, "smoke", False):
        args.limit, args.steps, args.batch_size, args.align_steps = 3, 3, 2, 2
        args.cue_steps, args.align_clips, args.vocab_clips, args.slot_clips = 2, 4, 3, 3

    cache = args.data_dir or (args.cache_dir or default_cache_dir()) / "training"
    dtype = getattr(args, "dtype", "fp32")  # training needs float weights (gradients)
    model = load_model(BundleSpec(cache_dir=args.cache_dir, adapter=UNTRAINED, dtype=dtype))
    if args.command == "names":
        model.adapter = Adapter.load(args.adapter, model.adapter.info.identities)
        model.adapter = train_names(model, cache, args.limit)
        notes = model.adapter.info.notes.split(" + a name head")[0]
        model.adapter.info.notes = notes + NAME_HEAD_NOTE
        model.adapter.save(args.adapter, dtype=torch.float16)
        print(f"adapter with its name head saved to {args.adapter}")
        return 0
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
            cue_steps=args.cue_steps,
            cue_answer_weight=args.cue_answer_weight,
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
        model.adapter = train_names(model, cache, args.limit)
        model.adapter.info.trained = True
        model.adapter.info.notes = (
            f"trained {config.align_steps} alignment steps (batch {config.align_batch_size}) "
            f"+ {config.steps} steps (batch {config.batch_size}) "
            f"+ {config.cue_steps} cue steps"
        ) + NAME_HEAD_NOTE
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


def train_names(model, cache: Path, limit: int | None):
    """model.adapter with a name head trained on named drawings (train_names.py)."""
    from fusion.name_head import class_vote_matrix
    from fusion.training.icon_data import prepare_icons
    from fusion.training.name_data import build_name_set
    from fusion.training.train_names import train_name_head, with_name_head

    suffix = f"-limit{limit}" if limit else ""
    icons = None if limit else prepare_icons(cache)  # smoke runs stay offline and short
    data = build_name_set(
        model, cache / f"named-drawing-views{suffix}.pt", limit=limit, icons=icons
    )
    if not data.vocabulary:
        print("name head: no named drawings (tuxpaint-stamps-default, openclipart-png); skipped")
        return model.adapter
    labeller = model.vision.labeller
    votes = None
    if labeller is not None:
        matrix = class_vote_matrix(labeller.names, data.vocabulary)

        def votes(means):  # mean tokens [M, C] -> votes [M, K]
            return labeller.probabilities(means[:, None, :]) @ matrix

    head, figures = train_name_head(data, votes=votes)
    print(f"name head: {len(head.names)} names, {figures}")
    return with_name_head(model.adapter, head)


def training_device(requested: str) -> str:
    """The device to train on: "auto" is "cuda" when torch sees a GPU, else "cpu"."""
    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_eval(model, sets: dict, args) -> int:
    from fusion.training import report
    from fusion.training.evaluate import (
        ADAPTER_ALONE,
        READERS,
        colour_scores,
        evaluate_speech,
        named_image_scores,
        repeat_wer,
        template_image_naming,
        transcribed,
    )
    from fusion.training.named_images import colour_named_images, named_images
    from fusion.training.natural_speech import NATURAL_VOICES, build_natural_set
    from fusion.training.sign_data import evaluate_reader, evaluate_signs, sign_examples

    if (args.adapter / "adapter.json").is_file():
        model.adapter = Adapter.load(args.adapter, model.adapter.info.identities)
    cache = args.data_dir or (args.cache_dir or default_cache_dir()) / "training"
    natural = build_natural_set(cache / "natural-speech-eval.pt", "eval")[: args.speech_limit]
    speech_sets = {
        f"natural, {voice.name}": [c for c in natural if c.voice == voice.name]
        for voice in NATURAL_VOICES
    }
    speech_sets["template questions"] = sets["speech-eval"][: args.speech_limit]
    clips = {
        name: transcribed(
            model,
            [item.text for item in items],
            [
                model.audio.encode(item.waveform)
                if hasattr(item, "samples")
                else item.features.float().unsqueeze(0)
                for item in items
            ],
        )
        for name, items in speech_sets.items()
    }
    typed: dict[str, str] = {}
    readers = [r for r in READERS if args.adapter_reading or r != ADAPTER_ALONE]
    speech = {
        (reader, name): evaluate_speech(model, clips[name], READERS[reader], typed)
        for reader in readers
        for name in clips
    }
    repeat = repeat_wer(model, clips["template questions"])
    images = named_images(limit=args.vision_limit)
    named, labelled = named_image_scores(model, images)
    coloured = colour_named_images(limit=args.vision_limit)
    colours_said = colour_scores(model, coloured)
    template_named = template_image_naming(model, sets["vision-eval"][: args.vision_limit])
    signs = sign_examples(args.sign_limit)
    signs_read = evaluate_signs(model, signs)
    signs_ocr = evaluate_reader(model.text_reader.read, signs)
    results = report.EvalResults(
        speech=speech,
        repeat_wer=repeat,
        named_images=named,
        label_named_images=labelled,
        images=len(images),
        template_images_named=template_named,
        template_images=min(len(sets["vision-eval"]), args.vision_limit),
        signs_read=signs_read,
        signs_read_by_ocr=signs_ocr,
        signs=len(signs),
        colours_said=colours_said,
        coloured=len(coloured),
    )
    print(report.table(results, model.adapter.info.notes))
    full = args.speech_limit is None and args.vision_limit == FULL_VISION
    if full and args.sign_limit == FULL_SIGNS and args.dtype == DTYPES[0]:
        model.adapter.info.metrics = report.metrics(results)
        model.adapter.save_info(args.adapter)  # every surface shows these figures
        print(f"figures saved with the adapter in {args.adapter}")
    else:
        print(
            f"a partial or non-{DTYPES[0]} run: the adapter's saved figures are left as they were"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
