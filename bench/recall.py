"""Remember -> recall, held out: the 32 pairs of assets/eval/recall_pairs.jsonl, and speed
with 10,000 moments stored.

1. Every pair's "remember" is kept as a moment of one owner (so the other 31 are distractors),
   an hour apart; each "ask" (a paraphrase, never the stored words) is answered by the
   embedded model through app.memory.with_moments, as the web app, CLI and API answer it. It is
   answered right when the answer holds one of the pair's expected words.
2. 10,000 more moments of the same owner (sentences from the pairs' words, shuffled) are added;
   the time from a question to the first token of its answer is measured (search + prompt +
   first token), median of 10, next to the same question with 0 extra moments.

Run: .venv/bin/python bench/recall.py [--database URL]
"""

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.memory import recall_options, remember_request, with_moments
from app.store.database import open_store
from app.store.moments import remember
from app.store.schema import Moment, now

PAIRS = Path(__file__).resolve().parents[1] / "assets" / "eval" / "recall_pairs.jsonl"
OWNER = "bench:recall"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", help="a PostgreSQL URL (default: SQLite in a temp folder)")
    parser.add_argument("--moments", type=int, default=10_000)
    args = parser.parse_args()
    from fusion.bundle import load_model
    from fusion.conversation import Message
    from fusion.generate import GenerationOptions
    from fusion.model import Chunk

    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    model = load_model()
    options = recall_options(GenerationOptions(max_new_tokens=48))
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(args.database, Path(folder))
        start = now() - timedelta(hours=len(pairs))
        for hour, pair in enumerate(pairs):
            moment_id = remember(store, OWNER, remember_request(pair["remember"]).note)
            with store.session() as session:
                session.get(Moment, moment_id).created_at = start + timedelta(hours=hour)
        right = 0
        for pair in pairs:
            messages, found = with_moments(store, OWNER, model, [Message("user", pair["ask"])])
            answer = "".join(
                e.text for e in model.stream(messages, options) if isinstance(e, Chunk)
            )
            ok = any(word in answer.lower() for word in pair["expect"])
            right += ok
            print(f"{'ok ' if ok else 'NO '} {pair['ask']!r} -> {answer.strip()!r} "
                  f"(found {len(found)})", flush=True)  # fmt: skip
        print(f"recall: {right}/{len(pairs)} = {right / len(pairs):.1%} answered right")

        def first_token_ms(question: str) -> float:
            times = []
            for _ in range(10):
                begin = time.perf_counter()
                messages, _ = with_moments(store, OWNER, model, [Message("user", question)])
                next(e for e in model.stream(messages, options) if isinstance(e, Chunk))
                times.append((time.perf_counter() - begin) * 1000)
            return statistics.median(times)

        question = pairs[0]["ask"]
        few = first_token_ms(question)
        words = [w for p in pairs for w in p["remember"].split()[2:]]
        rng = random.Random(0)
        begin = time.perf_counter()
        for _ in range(args.moments):
            remember(store, OWNER, " ".join(rng.sample(words, 8)))
        stored_s = time.perf_counter() - begin
        many = first_token_ms(question)
        print(f"recall first token, median of 10: {len(pairs)} moments {few:.0f} ms; "
              f"{len(pairs) + args.moments} moments {many:.0f} ms "
              f"(storing {args.moments} took {stored_s:.1f} s)")  # fmt: skip
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
