"""`lunettes remember`, `recall`, `moments`, `forget`, `export`: memory from the command line.

They keep and read the moments of this machine's own user (owner "local") in the same store
as the web app (--database, default SQLite in the data folder). Remembering typed words needs
no model; a photo or clip is looked at or transcribed by the embedded model first.
"""

import argparse
import os
import sys
from pathlib import Path

from encoders.errors import InputError

LOCAL_OWNER = "local"  # the command line's own moments, apart from every browser's


def add_store_arguments(parser: argparse.ArgumentParser, data_dir: bool = True) -> None:
    """--database, --keep-days, and --data-dir unless the parser has its own."""
    group = parser.add_argument_group("store (conversations and moments)")
    group.add_argument(
        "--database",
        default=os.environ.get("LUNETTES_DATABASE") or None,
        metavar="URL",
        help="postgresql://user@host/db, or sqlite:///file.db (default: $LUNETTES_DATABASE, "
        "else SQLite in the data folder)",
    )
    if data_dir:
        group.add_argument(
            "--data-dir",
            type=Path,
            help="where the database, photos and recordings are kept "
            "(default: $LUNETTES_DATA or ~/.local/share/lunettes)",
        )
    group.add_argument(
        "--keep-days",
        type=float,
        default=float(os.environ.get("LUNETTES_KEEP_DAYS") or 0),
        metavar="DAYS",
        help="forget moments and conversations older than this (default: $LUNETTES_KEEP_DAYS, "
        "else keep everything)",
    )


def open_from(args: argparse.Namespace):
    """The store named by the arguments, with the retention setting applied."""
    from app.store.database import StoreError, open_store
    from app.store.privacy import forget_older_than

    try:
        store = open_store(args.database, args.data_dir)
    except StoreError as error:
        raise InputError(str(error)) from None
    if args.keep_days > 0:
        forget_older_than(store, args.keep_days)
    return store


def add_memory_commands(commands, add_model_arguments) -> None:
    remember = commands.add_parser(
        "remember", help="remember a note, photos or a clip, to recall later"
    )
    remember.add_argument(
        "text", nargs="?", default="", help='what to remember ("my car is on level 3")'
    )
    remember.add_argument(
        "--image", action="append", default=[], metavar="PATH", help="a photo; repeat for several"
    )
    remember.add_argument("--audio", metavar="PATH", help="a clip: its transcript is kept with it")
    remember.set_defaults(run=run_remember)

    recall = commands.add_parser(
        "recall", help="answer a question from what you asked me to remember"
    )
    recall.add_argument("question", help='e.g. "where did I park?"')
    recall.set_defaults(run=run_recall)

    listed = commands.add_parser("moments", help="list what you asked me to remember, newest first")
    listed.set_defaults(run=run_moments)

    forget = commands.add_parser("forget", help="forget one moment, or everything")
    which = forget.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--moment", type=int, metavar="ID", help="the moment's id (lunettes moments)"
    )
    which.add_argument("--all", action="store_true", help="every moment and conversation of yours")
    forget.set_defaults(run=run_forget)

    export = commands.add_parser("export", help="print everything kept for you as JSON")
    export.set_defaults(run=run_export)
    for parser in (remember, recall, listed, forget, export):
        add_store_arguments(parser)
    for parser in (remember, recall):
        add_model_arguments(parser)


def run_remember(args: argparse.Namespace) -> int:
    from app.memory import remember_request, seen_in
    from app.store.moments import remember
    from encoders.audio_io import load_audio
    from encoders.image_io import load_image

    images = [(Path(p), load_image(p)) for p in args.image]  # checked before anything is kept
    clip = load_audio(args.audio) if args.audio else None
    request = remember_request(args.text)
    note = request.note if request and request.note else args.text.strip()
    if not (note or images or clip is not None):
        raise InputError("nothing to remember: give TEXT, --image PATH or --audio PATH")
    seen, text_read, transcript = [], [], ""
    if images or clip is not None:
        from app.cli import bundle_spec
        from fusion.bundle import load_model
        from fusion.conversation import user

        model = load_model(bundle_spec(args))
        for _, image in images:
            named, text = seen_in(model, image)
            seen.append(named)
            text_read.append(text)
        if clip is not None:
            message = user(speech=clip)
            model.encode_media([message])
            transcript = message.speech.transcript or ""
    store = open_from(args)
    moment_id = remember(
        store, LOCAL_OWNER, note, [path for path, _ in images], Path(args.audio) if args.audio else None,
        transcript=transcript, seen="; ".join(filter(None, seen)), text_read=" / ".join(filter(None, text_read)),
    )  # fmt: skip
    kept = note or transcript or "; ".join(filter(None, seen)) or "the photo"
    print(f"remembered (moment {moment_id}): {kept}")
    return 0


def run_recall(args: argparse.Namespace) -> int:
    from app.cli import bundle_spec
    from app.memory import recall_options, with_moments
    from fusion.bundle import load_model
    from fusion.conversation import Message
    from fusion.generate import GenerationOptions
    from fusion.model import Chunk

    if not args.question.strip():
        raise InputError("ask a question, e.g. lunettes recall 'where did I park?'")
    store = open_from(args)
    model = load_model(bundle_spec(args))
    messages, found = with_moments(
        store, LOCAL_OWNER, model, [Message("user", args.question.strip())]
    )
    if not found:
        print("Nothing you asked me to remember matches that question.")
        return 0
    for event in model.stream(messages, recall_options(GenerationOptions(max_new_tokens=96))):
        if isinstance(event, Chunk):
            print(event.text, end="", flush=True)
    print()
    from app.memory import described

    for moment in found:
        print(f"  (from moment {moment.id}: {described(moment)})", file=sys.stderr)
    return 0


def run_moments(args: argparse.Namespace) -> int:
    from app.memory import described
    from app.store.moments import listed

    moments = listed(open_from(args), LOCAL_OWNER)
    for moment in moments:
        print(f"{moment.id:>6}  {described(moment)}")
    if not moments:
        print("No moments yet: lunettes remember 'my car is on level 3'")
    return 0


def run_forget(args: argparse.Namespace) -> int:
    from app.store.moments import forget
    from app.store.privacy import forget_everything

    store = open_from(args)
    if args.all:
        moments, conversations = forget_everything(store, LOCAL_OWNER)
        print(f"forgot {moments} moments and {conversations} conversations")
        return 0
    if not forget(store, LOCAL_OWNER, args.moment):
        raise InputError(f"no moment {args.moment} (lunettes moments lists them)")
    print(f"forgot moment {args.moment}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from app.store.privacy import export_everything

    print(export_everything(open_from(args), LOCAL_OWNER))
    return 0
