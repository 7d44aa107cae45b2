"""A web session answering into the store, to be SIGKILLed mid-answer (test_web_history.py).

python -m tests.crash_answer DATA_DIR OWNER: asks one question on the tiny model, and prints
each version of the answer as the page would show it, one JSON line each, after the
session's history has kept it (answer_next keeps before it yields).
"""

import json
import sys
import time
from pathlib import Path

from app.store.database import open_store
from app.web_history import History
from app.web_session import WebSession, answer_next
from fusion.generate import GenerationOptions
from tests import tiny


def main(data_dir: str, owner: str) -> None:
    model = tiny.tiny_model()
    session = WebSession(root=Path(data_dir))
    session.history = History(open_store(None, Path(data_dir)), owner)
    session.ask("Tell me a long story")
    for turn in answer_next(model, session, GenerationOptions(max_new_tokens=400)):
        print(json.dumps({"shown": turn.answer}), flush=True)
        time.sleep(0.02)


if __name__ == "__main__":
    main(*sys.argv[1:3])
