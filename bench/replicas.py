"""Replicas on Ray Serve against one process, side by side, on the embedded bundle.

    .venv/bin/python -m bench.replicas [--replicas 2] [--seconds 40] [--kill-after 10]

1. `lunettes serve` (one process): launch -> first answer, and its memory.
2. `lunettes serve --replicas N`: launch -> first answer; each replica's memory, and what Ray
   and the front add (PSS: shared pages counted once across the processes).
3. 8 parallel requests: which replicas answered them.
4. 8 clients (bench/load_test.py's requests: text, photo, speech) for --seconds; one replica
   SIGKILLed after --kill-after s. Requests refused (429/503) or cut (a streamed answer whose
   replica was lost) are sent again; lost = anything else. Meanwhile a probe asks every 0.5 s
   which replica answers: the time from the kill to the first answer of its replacement.

Exits 1 when a target is missed: answering within 60 s of launch, both replicas answering
the 8 parallel requests, 0 lost and 0 mixed up under the kill, the replacement answering
within 60 s.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from bench.load_test import (
    ROOT,
    client_bodies,
    data_url,
    free_port,
    run_load,
    send,
    spoken_clips,
)

READY_TARGET_S = 60.0
BACK_TARGET_S = 60.0
MiB = 1 << 20


def launch(port: int, replicas: int | None) -> tuple[subprocess.Popen, float, str]:
    """Start `lunettes serve` -> (process, seconds from launch to its first answer, replica)."""
    command = [
        sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--no-history",
    ]  # fmt: skip
    if replicas:
        command += ["--replicas", str(replicas)]
    env = {k: v for k, v in os.environ.items() if k != "LUNETTES_API_KEY"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    started = time.monotonic()
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    question = {"model": "lunettes", "messages": [{"role": "user", "content": "Hi"}]}
    while time.monotonic() - started < 300:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            answer = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json=question | {"max_tokens": 4},
                timeout=30,
            )
            if answer.status_code == 200:
                replica = answer.headers.get("x-lunettes-replica", "")
                return server, time.monotonic() - started, replica
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(server)
    raise SystemExit("the server did not answer within 300 s")


def stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def memory(pid: int) -> dict[str, float]:
    """RSS of the process alone; PSS of it and every process under it (Ray's included)."""
    root = psutil.Process(pid)
    tree = [root, *root.children(recursive=True)]
    pss = 0.0
    for process in tree:
        try:
            pss += process.memory_full_info().pss
        except psutil.Error:
            pass
    return {"rss": root.memory_info().rss / MiB, "pss_tree": pss / MiB, "processes": len(tree)}


def replica_pids(server: subprocess.Popen, url: str, bodies: list, want: int) -> dict[str, int]:
    """The replicas answering, id -> pid, from parallel requests' headers."""
    seen: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=300) as http:
        for _ in range(20):
            outcomes: list = []

            def ask(body: dict, outcomes: list = outcomes) -> None:
                outcomes.append(send(http, body["text"], False, 0, "text"))

            threads = [threading.Thread(target=ask, args=(body,)) for body in bodies]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for outcome in outcomes:
                if outcome.replica:
                    replica_id, pid = outcome.replica.split()
                    seen[replica_id] = int(pid)
            if len(seen) >= want:
                break
    return seen


class Probe:
    """Asks every 0.5 s; keeps (seconds since start, replica id) of each answer."""

    def __init__(self, url: str, body: dict):
        self.url, self.body, self.answers, self.running = url, body, [], True
        self.start = time.monotonic()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        with httpx.Client(base_url=self.url, timeout=300) as http:
            while self.running:
                outcome = send(http, self.body, False, -1, "text")
                if outcome.status == 200 and outcome.replica:
                    self.answers.append((time.monotonic() - self.start, outcome.replica.split()[0]))
                time.sleep(0.5)

    def stop(self) -> None:
        self.running = False
        self.thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=40.0, help="load with the kill")
    parser.add_argument("--kill-after", type=float, default=10.0)
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args(argv)
    misses = []

    with tempfile.TemporaryDirectory() as folder:
        clips = spoken_clips(Path(folder))
    photos = [data_url(p) for p in sorted((ROOT / "assets" / "examples").glob("*.jpg"))]
    bodies = [
        client_bodies(i, "lunettes", photos, clips, args.max_tokens) for i in range(args.clients)
    ]

    port = free_port()
    server, ready_s, _ = launch(port, None)
    single = memory(server.pid)
    stop(server)
    print(
        f"one process: launch -> first answer {ready_s:.1f} s; memory RSS {single['rss']:.0f} MiB",
        flush=True,
    )

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server, ready_s, _ = launch(port, args.replicas)
    try:
        replicas = replica_pids(server, url, bodies, args.replicas)
        tree = memory(server.pid)
        each = [psutil.Process(pid).memory_info().rss / MiB for pid in replicas.values()]
        pss = {pid: psutil.Process(pid).memory_full_info().pss / MiB for pid in replicas.values()}
        overhead = tree["pss_tree"] - sum(pss.values())
        print(
            f"{args.replicas} replicas on Ray Serve: launch -> first answer {ready_s:.1f} s; "
            f"each replica RSS {', '.join(f'{m:.0f}' for m in each)} MiB (PSS "
            f"{', '.join(f'{m:.0f}' for m in pss.values())}); Ray, Serve and the front: PSS "
            f"{overhead:.0f} MiB in {tree['processes'] - len(replicas)} processes; all together "
            f"PSS {tree['pss_tree']:.0f} MiB",
            flush=True,
        )
        if ready_s > READY_TARGET_S:
            misses.append(f"first answer after {ready_s:.0f} s")
        print(
            f"{args.clients} parallel requests: answered by {len(replicas)} replicas "
            f"({', '.join(f'{i} pid {p}' for i, p in replicas.items())})",
            flush=True,
        )
        if len(replicas) < args.replicas:
            misses.append(f"only {len(replicas)} replicas answered")

        victim_id, victim_pid = next(iter(replicas.items()))
        before = set(replicas)
        probe = Probe(url, bodies[0]["text"])
        killed_at: list[float] = []

        def kill() -> None:
            time.sleep(args.kill_after)
            killed_at.append(time.monotonic() - probe.start)
            os.kill(victim_pid, signal.SIGKILL)

        killer = threading.Thread(target=kill)
        killer.start()
        report = run_load(url, bodies, args.seconds)
        killer.join()
        deadline = time.monotonic() + BACK_TARGET_S
        while time.monotonic() < deadline and not any(
            t > killed_at[0] and r not in before for t, r in probe.answers
        ):
            time.sleep(0.5)
        probe.stop()
        back = [t - killed_at[0] for t, r in probe.answers if t > killed_at[0] and r not in before]
        survivors = {r for t, r in probe.answers if t > killed_at[0]} - {victim_id}
        print(
            f"replica {victim_id} (pid {victim_pid}) SIGKILLed {args.kill_after:g} s into "
            f"{args.seconds:g} s of {args.clients}-client load:",
            flush=True,
        )
        print(report.format())
        answered_by = sorted({o.replica.split()[0] for o in report.answered if o.replica})
        print(f"answered by replicas: {', '.join(answered_by)}")
        if back:
            print(
                f"its replacement answered {back[0]:.1f} s after the kill; "
                f"{len(survivors)} replicas answering since"
            )
        else:
            print(f"its replacement did not answer within {BACK_TARGET_S:g} s")
            misses.append("no replacement")
        if not report.ok:
            misses.append("requests lost or mixed up")
    finally:
        stop(server)
    for miss in misses:
        print(f"MISSED: {miss}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
