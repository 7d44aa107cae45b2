"""`lunettes serve --replicas N` on the tiny models, for test_replicas.py: the same launch path
(app.replicas.launch) with a model each replica builds from tests.tiny instead of the bundle.

python -m tests.replicas_server PORT REPLICAS [DATA_DIR]: serves until SIGTERM. The replicas
import this module, so PYTHONPATH must name the repository (the test sets it).
"""

import functools
import sys
from pathlib import Path

from app.openai_api.config import ApiConfig
from app.replicas.launch import Scale, serve_replicas
from app.replicas.replica import ReplicaSettings
from app.store.database import open_store
from tests import tiny
from tests.web_support import PacedModel

ANSWER_TOKENS = 12  # the tiny LM never stops by itself; the web page asks for 256


def tiny_model():
    tokenizer = tiny.tiny_tokenizer()
    model = tiny.tiny_lunettes(
        tokenizer,
        tiny.tiny_lm(len(tokenizer), tokenizer.eos_token_id),
        tiny.tiny_clip_encoder(),
        tiny.tiny_audio_encoder(),
    )
    return PacedModel(model, pace_s=0.0, max_tokens=ANSWER_TOKENS)


def main(port: str, replicas: str, data_dir: str | None = None) -> None:
    opener = functools.partial(open_store, None, Path(data_dir)) if data_dir else None
    settings = ReplicaSettings(load_model=tiny_model, api=ApiConfig(), open_store=opener)
    scale = Scale(replicas=int(replicas), replica_cpus=0.5)
    serve_replicas(settings, scale, "127.0.0.1", int(port))


if __name__ == "__main__":
    main(*sys.argv[1:4])
