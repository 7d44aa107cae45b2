"""The `lunettes` command: ask about a photo or a spoken question, serve the web app, prepare weights."""

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from app.memory_cli import add_memory_commands, add_store_arguments, open_from
from app.openai_api.config import ApiConfig
from encoders.errors import InputError

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1

UNTRAINED_NOTE = (
    "note: the adapter is untrained: the model receives the photo and speech features, but its "
    "answers about them are not meaningful yet"
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    try:
        return args.run(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a person sees one line, never a traceback
        if os.environ.get("LUNETTES_DEBUG"):
            raise
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILURE


def quiet_libraries() -> None:
    """No weight-loading progress bars or advisory warnings in a person's terminal."""
    import warnings

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lunettes",
        description="Lunettes: a local multimodal assistant. Show it a photo, speak or type a question.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    ask = commands.add_parser(
        "ask", help="answer one question about photos and/or speech, streaming"
    )
    ask.add_argument(
        "text", nargs="?", default="", help="the typed question (optional with --audio)"
    )
    ask.add_argument(
        "--image", action="append", default=[], metavar="PATH", help="a photo; repeat for several"
    )
    ask.add_argument(
        "--audio",
        metavar="PATH",
        help="a spoken question (WAV, FLAC, OGG, MP3; others need ffmpeg)",
    )
    ask.add_argument(
        "--json", action="store_true", help="print one JSON object instead of streaming text"
    )
    add_generation_arguments(ask)
    add_model_arguments(ask)
    ask.set_defaults(run=run_ask)

    serve = commands.add_parser(
        "serve", help="serve the web app and the OpenAI-compatible API (/v1) on one port"
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only)",
    )
    serve.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    access = serve.add_argument_group("access (needed when serving on a public address)")
    access.add_argument(
        "--api-key",
        default=os.environ.get("LUNETTES_API_KEY") or None,
        metavar="KEY",
        help="required on /v1 as 'Authorization: Bearer KEY' (default: $LUNETTES_API_KEY; "
        "the variable keeps it out of the process list)",
    )
    access.add_argument(
        "--auth",
        type=login,
        action="append",
        metavar="USER:PASSWORD",
        help="a login for the web app; repeat it for several people, each with conversations "
        "and memory of their own (default: $LUNETTES_AUTH, one login)",
    )
    access.add_argument(
        "--allow-remote-media",
        action="store_true",
        help="let API requests give photos as http(s) URLs, fetched by the server "
        "(default: data: URLs only)",
    )
    secure = serve.add_argument_group("HTTPS (phones give the camera and microphone only to it)")
    secure.add_argument(
        "--https",
        action="store_true",
        help="serve over HTTPS with this machine's own certificate authority, made once and "
        "kept in the data folder; a phone trusts it once (the page says how)",
    )
    secure.add_argument(
        "--ssl-certfile", type=Path, metavar="PEM", help="serve over HTTPS with this certificate"
    )
    secure.add_argument("--ssl-keyfile", type=Path, metavar="PEM", help="... and this key")
    secure.add_argument(
        "--data-dir",
        type=Path,
        help="where the certificates, conversations and memory are kept "
        "(default: $LUNETTES_DATA or ~/.local/share/lunettes)",
    )
    serve.add_argument(
        "--max-waiting",
        type=int,
        default=ApiConfig.max_waiting,
        metavar="N",
        help=f"API requests let in beside one being answered (answered together in one batch "
        f"while their memory allows, else waiting); more are refused with 429 "
        f"(default: {ApiConfig.max_waiting})",
    )
    add_store_arguments(serve, data_dir=False)
    serve.add_argument(
        "--no-history",
        action="store_true",
        help="keep no conversations or memory (nothing is written to the data folder)",
    )
    add_replica_arguments(serve)
    add_model_arguments(serve)
    serve.set_defaults(run=run_serve)

    add_memory_commands(commands, add_model_arguments)

    prepare = commands.add_parser(
        "prepare", help="convert the embedded weights once into the cache"
    )
    add_model_arguments(prepare)
    prepare.set_defaults(run=run_prepare)

    for name, text in TRAINING_COMMANDS.items():
        command = commands.add_parser(name, help=text, add_help=False)  # --help: forwarded
        command.set_defaults(run=run_training, passthrough=True, command=name)
    return parser


TRAINING_COMMANDS = {
    "data": "build the cached training and held-out sets (speech synthesis, encoder features)",
    "train": "train the adapter (checkpoints and resumes; pip install -e '.[train]' first)",
    "eval": "evaluate an adapter on held-out data against the untrained baseline",
}


def run_training(args: argparse.Namespace) -> int:
    from fusion.training.__main__ import main as training_main

    return training_main([args.command, *args.extra])


def web_logins(args: argparse.Namespace) -> list[tuple[str, str]] | None:
    """The web app's logins: every --auth, else $LUNETTES_AUTH's one, else None (no login)."""
    if args.auth:
        return list(args.auth)
    from_env = os.environ.get("LUNETTES_AUTH")
    if not from_env:
        return None
    try:
        return [login(from_env)]
    except argparse.ArgumentTypeError as error:
        raise InputError(f"LUNETTES_AUTH: {error}") from None


def login(text: str) -> tuple[str, str]:
    """A USER:PASSWORD argument -> (user, password); the password may hold colons."""
    user, colon, password = text.partition(":")
    if not (user and colon and password):
        raise argparse.ArgumentTypeError("expected USER:PASSWORD, both non-empty")
    return user, password


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-tokens", type=int, default=256, help="longest answer in tokens (default: 256)"
    )
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="0 = deterministic (default)"
    )
    parser.add_argument(
        "--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1.0)"
    )
    parser.add_argument("--seed", type=int, help="sampling seed")
    parser.add_argument(
        "--repetition-penalty",
        type=float,
        default=1.1,
        help="> 1 keeps a small model from looping (default: 1.1)",
    )
    parser.add_argument(
        "--system", help="system prompt (default: a plain helpful-assistant prompt)"
    )


def add_replica_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "replicas on Ray Serve (pip install 'lunettes[replicas]'; default: one process, no Ray)"
    )
    group.add_argument(
        "--replicas",
        type=int,
        metavar="N",
        help="serve with N model replicas behind one front on Ray Serve; a replica that dies "
        "is replaced, and the others go on answering",
    )
    group.add_argument(
        "--min-replicas", type=int, metavar="N", help="autoscale: at least N replicas ..."
    )
    group.add_argument("--max-replicas", type=int, metavar="N", help="... and at most N")
    group.add_argument(
        "--replica-cpus",
        type=float,
        default=1.0,
        metavar="CPUS",
        help="Ray CPUs (and torch threads) each replica takes (default: 1)",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="join this Ray cluster (HOST:6379 of `ray start --head`; 'auto': the one on this "
        "machine) instead of starting Ray here",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("models (default: the embedded bundle, no network needed)")
    group.add_argument(
        "--lm", default="embedded", help="transformers causal LM: hub id or local directory"
    )
    group.add_argument(
        "--vision", default="embedded", help="open_clip MODEL:PRETRAINED or MODEL:/path/weights.pt"
    )
    group.add_argument(
        "--audio-model",
        default="embedded",
        help="Whisper size (tiny, base, ...) or checkpoint path",
    )
    group.add_argument(
        "--adapter", default="auto", help="adapter directory (default: the shipped one if it fits)"
    )
    group.add_argument(
        "--cache-dir",
        type=Path,
        help="converted weights (default: $LUNETTES_CACHE or ~/.cache/lunettes)",
    )
    group.add_argument(
        "--dtype",
        choices=["bf16-photos", "fp32", "int4"],  # fusion.bundle.DTYPES, not imported: --help
        default="bf16-photos",  # stays light
        help="the language model's linear layers: float32, with the prompts of photos "
        "prefilled in bfloat16 where this CPU has bfloat16 instructions (default); float32 "
        "throughout; or the embedded GGUF's own 4-bit weights on torch's int4 kernel",
    )


def bundle_spec(args: argparse.Namespace):
    from fusion.bundle import BundleSpec

    return BundleSpec(
        lm=args.lm,
        vision=args.vision,
        audio=args.audio_model,
        adapter=args.adapter,
        cache_dir=args.cache_dir,
        dtype=args.dtype,
    )


def run_ask(args: argparse.Namespace) -> int:
    from encoders.audio_io import load_audio
    from encoders.image_io import load_image
    from fusion.bundle import load_model
    from fusion.conversation import user
    from fusion.generate import GenerationOptions
    from fusion.model import Chunk, Heard, Stats

    # Read and check every input before the (seconds-long) model load: bad input fails fast.
    photos = [load_image(path) for path in args.image]
    speech = load_audio(args.audio) if args.audio else None
    if not (args.text.strip() or photos or speech is not None):
        raise InputError("nothing to answer: give a question, --image PATH or --audio PATH")
    try:
        options = GenerationOptions(
            max_new_tokens=args.max_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            repetition_penalty=args.repetition_penalty,
        )
    except ValueError as error:
        raise InputError(str(error)) from None

    start = time.perf_counter()
    model = load_model(bundle_spec(args))
    if args.system is not None:
        model.system_prompt = args.system
    load_ms = (time.perf_counter() - start) * 1000
    trained = model.adapter.info.trained
    if not trained and not args.json and (photos or speech is not None):
        print(UNTRAINED_NOTE, file=sys.stderr)

    answer, transcript, stats = [], None, None
    for event in model.stream([user(args.text.strip(), photos, speech)], options):
        if isinstance(event, Heard):
            transcript = event.text
            if not args.json:
                print(f"heard: {event.text}", file=sys.stderr, flush=True)
        elif isinstance(event, Chunk):
            answer.append(event.text)
            if not args.json:
                print(event.text, end="", flush=True)
        elif isinstance(event, Stats):
            stats = event
    if not args.json:
        print()
        return 0
    report = {
        "answer": "".join(answer).strip(),
        **({"transcript": transcript} if speech is not None else {}),
        # the words the language model was given for the clip (fusion/speech_reading.py)
        **({"read_as": (stats.read_as or [None])[0]} if speech is not None else {}),
        "adapter": model.describe()["adapter"],
        "models": {k: v for k, v in model.describe().items() if k != "adapter"},
        "timings": {"load": round(load_ms, 1), **stats.timings_ms},
        "tokens_per_s": stats.tokens_per_s,
        "prompt_tokens": stats.prompt_tokens,
        "new_tokens": stats.new_tokens,
        "finish_reason": stats.finish_reason,
    }
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from app.server import serve
    from fusion.bundle import load_model

    try:  # checked before the (seconds-long) model load
        api = ApiConfig(
            api_key=args.api_key,
            allow_remote_media=args.allow_remote_media,
            max_waiting=args.max_waiting,
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    tls = tls_files(args)
    store = None if args.no_history else open_from(args)  # a bad database fails before the load
    logins = web_logins(args)
    if on_ray(args):
        return run_replicas(args, api, logins, tls, store)
    serve(load_model(bundle_spec(args)), args.host, args.port, api, logins, tls, store)
    return 0


def on_ray(args: argparse.Namespace) -> bool:
    return any(
        value is not None
        for value in (args.replicas, args.min_replicas, args.max_replicas, args.ray_address)
    )


def run_replicas(args: argparse.Namespace, api: ApiConfig, logins, tls, store) -> int:
    """serve --replicas: the same server in each replica, on Ray Serve (app/replicas)."""
    import functools
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise InputError("--replicas needs Ray Serve: pip install 'lunettes[replicas]'")
    from app.replicas.launch import Scale, serve_replicas
    from app.replicas.replica import ReplicaSettings
    from app.store.database import open_store
    from fusion.bundle import load_model

    try:
        scale = Scale(
            replicas=args.replicas or args.min_replicas or 1,
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
            replica_cpus=args.replica_cpus,
            ray_address=args.ray_address,
        )
    except ValueError as error:
        raise InputError(str(error)) from None
    opener = None
    if store is not None:  # checked (and migrated) here; each replica opens its own
        store.engine.dispose()
        opener = functools.partial(open_store, args.database, args.data_dir)
    settings = ReplicaSettings(
        load_model=functools.partial(load_model, bundle_spec(args)),
        api=api,
        logins=logins,
        open_store=opener,
        threads=max(1, int(args.replica_cpus)),
    )
    serve_replicas(settings, scale, args.host, args.port, tls)
    return 0


def tls_files(args: argparse.Namespace):
    """The certificate to serve with: the one given, the local CA's (--https), or None."""
    from app.certificates import given_certificate, local_certificate
    from app.data_dir import default_data_dir
    from app.phone import served_names

    if args.ssl_certfile or args.ssl_keyfile:
        if not (args.ssl_certfile and args.ssl_keyfile):
            raise InputError("--ssl-certfile and --ssl-keyfile go together")
        return given_certificate(args.ssl_certfile, args.ssl_keyfile)
    if args.https:
        folder = (args.data_dir or default_data_dir()) / "https"
        return local_certificate(folder, *served_names(args.host))
    return None


def run_prepare(args: argparse.Namespace) -> int:
    from app.adapter_status import adapter_figures
    from fusion.bundle import load_model

    start = time.perf_counter()
    model = load_model(bundle_spec(args))
    described = model.describe()
    print(
        f"ready in {time.perf_counter() - start:.1f} s: {described['language_model']}; "
        f"{described['vision_encoder']}; {described['audio_encoder']}; "
        + (
            f"adapter trained ({adapter_figures(described['adapter']['metrics'])})"
            if described["adapter"]["trained"]
            else "adapter untrained"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
