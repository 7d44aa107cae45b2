"""`lunettes serve --replicas N` on the tiny models, for test_replicas.py: the same launch path
(app.replicas.launch) with a model each replica builds from tests.tiny instead of the bundle.

python -m tests.replicas_server PORT REPLICAS [DATA_DIR]: serves until SIGTERM. The replicas
import this module, so PYTHONPATH must name the repository (the test sets it).
"""

import contextlib
import functools
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.openai_api.config import ApiConfig
from app.replicas.launch import Scale, serve_replicas
from app.replicas.replica import ReplicaSettings
from app.store.database import open_store
from tests import tiny
from tests.web_support import PacedModel

ROOT = Path(__file__).resolve().parents[1]
ANSWER_TOKENS = 12  # the tiny LM never stops by itself; the web page asks for 256


def tiny_model():
    return PacedModel(tiny.tiny_model(), pace_s=0.0, max_tokens=ANSWER_TOKENS)


@contextlib.contextmanager
def serving(command: list[str], log: Path, env: dict, timeout_s: float):
    """Run `command` (a `serve`, with replicas or not) until it prints "serving on" (every
    replica up, or the one server listening) -> its process; SIGTERM at the end, unless it
    has ended (test_serve_stops.py stops it itself)."""
    started = time.monotonic()
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        while "serving on" not in log.read_text():
            assert process.poll() is None, f"it stopped:\n{log.read_text()[-3000:]}"
            assert time.monotonic() - started < timeout_s, (
                f"not serving:\n{log.read_text()[-3000:]}"
            )
            time.sleep(0.5)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(port: str, replicas: str, data_dir: str | None = None) -> None:
    opener = functools.partial(open_store, None, Path(data_dir)) if data_dir else None
    settings = ReplicaSettings(load_model=tiny_model, api=ApiConfig(), open_store=opener)
    scale = Scale(replicas=int(replicas), replica_cpus=0.5)
    serve_replicas(settings, scale, "127.0.0.1", int(port))


if __name__ == "__main__":
    main(*sys.argv[1:4])
