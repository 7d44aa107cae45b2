"""Beside a busy core: the decode thread's team size and the voice's threads, idle and beside a
process that spins on one core (as the wearer's browser does on a 2-core server).

    .venv/bin/python -m bench.contention [--rounds 2]

Decoding, one stream of 96 tokens through the decode scheduler, as the server decodes: with
a team of two threads, of one, and of the size fusion/team_size.py chooses from its step
times (a fresh scheduler each time: its first answer runs on two threads until its first try
of one). Piper, one sentence: its onnxruntime threads spinning between runs (PiperVoice.load's
session) or sleeping (encoders/piper_voice.py's). Each figure alternates with the others in
one process; medians over the rounds.
"""

import argparse
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

SENTENCE = "The capital of Australia is Canberra."
QUESTION = "Tell me about the history of Paris."


@contextmanager
def busy_core(on: bool):
    """A process spinning on one core while inside, when `on`."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if on else None
    time.sleep(0.3 if on else 0.0)
    try:
        yield
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def decoding_ways(model):
    """name -> a function that answers QUESTION once -> tokens per second."""
    from fusion.conversation import user
    from fusion.generate import GenerationOptions
    from fusion.model import Stats
    from fusion.scheduler import DecodeScheduler

    options = GenerationOptions(max_new_tokens=96)

    def way(**settings):
        def run(owner: str) -> float:
            model.unshare()
            model.decoder = DecodeScheduler(model.lm, prefixes=model.prefixes, **settings)
            events = list(model.stream([user(QUESTION)], options, owner))
            return next(e for e in events if isinstance(e, Stats)).tokens_per_s

        return run

    return {
        "two threads": way(threads=2, adapt_team=False),
        "one thread": way(threads=1, adapt_team=False),
        "chosen (team_size.py)": way(threads=2, adapt_team=True),
    }


def voice_ways():
    """name -> a function that says SENTENCE once -> milliseconds."""
    import importlib

    from piper import PiperVoice

    from encoders import piper_voice

    module = importlib.import_module(piper_voice.VOICE_PACKAGE.replace("-", "_"))
    spinning = PiperVoice.load(module.model_path(), config_path=module.config_path())
    sleeping = piper_voice.voice()

    def way(voice):
        def run(_owner: str) -> float:
            start = time.perf_counter()
            for _ in voice.synthesize(SENTENCE):
                pass
            return (time.perf_counter() - start) * 1000

        run("")  # its first run is slower
        return run

    return {"Piper, threads spinning": way(spinning), "Piper, threads sleeping": way(sleeping)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    from fusion.bundle import load_model

    model = load_model()
    ways = {**decoding_ways(model), **voice_ways()}
    ways["two threads"](owner="warm-up")
    results: dict[tuple[bool, str], list[float]] = {}
    for round_ in range(args.rounds):
        for busy in (False, True):
            with busy_core(busy):
                for name, run in ways.items():
                    for repeat in range(2):
                        figure = run(f"{round_}-{busy}-{name}-{repeat}")
                        results.setdefault((busy, name), []).append(figure)
    model.unshare()
    for (busy, name), figures in results.items():
        unit = "ms" if name.startswith("Piper") else "tok/s"
        where = "beside a busy core" if busy else "idle"
        shown = ", ".join(f"{f:.1f}" for f in figures)
        print(f"{where:19} {name:24} median {statistics.median(figures):7.1f} {unit} of [{shown}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
