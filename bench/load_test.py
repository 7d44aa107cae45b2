"""Load test of the HTTP API: clients mixing text, photo and speech requests over loopback.

    .venv/bin/python bench/load_test.py [--clients 8] [--seconds 60] [--max-tokens 24]
                                        [--url http://HOST:PORT --api-key KEY]

Without --url it starts `lunettes serve` (the embedded bundle) on a free loopback port and
reads that process's memory from /proc. Each client sends, one after the other, its own
requests (its own question, photo and clip), cycling text / photo / speech / photo+speech,
streamed every other time. A request must be answered (200) or refused by back-pressure (429,
retried after its Retry-After; on Ray Serve also 503, and a stream that says its replica
was lost: each is sent again). It is *lost* on any other outcome (a timeout, a dropped
connection, another status, a broken stream) and *mixed up* when the same request ever gets
a different answer, usage or transcript (decoding is greedy: a request's answer is fixed).
Prints throughput and latency percentiles; exits 1 when a request was lost or mixed up, or
when the server does not answer normally afterwards.
"""

import argparse
import base64
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("text", "photo", "speech", "photo+speech")
QUESTIONS = [
    "What is in this picture?",
    "Describe what you see, briefly.",
    "What colour is the main object?",
    "Is this indoors or outdoors?",
    "What would you do next here?",
    "Name one thing in the photo.",
    "What time of day is it?",
    "Say something about this.",
]
SENTENCES = [
    "What is the weather like in Paris today?",
    "Can you tell me what this plant is?",
    "How far is the train station from here?",
    "Please read the sign in front of me.",
]
REQUEST_TIMEOUT_S = 300.0


@dataclass
class Outcome:
    client: int
    kind: str
    stream: bool
    status: int | None  # None: no HTTP answer (timeout, connection error)
    seconds: float  # from sending to the last byte
    first_token_s: float | None = None  # streamed answers: to the first piece of text
    answer: str = ""
    usage: dict = field(default_factory=dict)
    heard: list[str] = field(default_factory=list)
    problem: str = ""  # why a request counts as lost
    retry_after_s: float = 1.0
    replica: str = ""  # "<id> <pid>" of the replica that answered (serve --replicas)
    cut: bool = False  # a streamed answer whose replica was lost: a clean error, sent again


@dataclass
class LoadReport:
    clients: int
    sending_s: float  # how long clients started new requests
    seconds: float  # wall time of the load, until the last answer
    outcomes: list[Outcome]
    mixed_up: list[str]  # descriptions of answers that differ for the same request
    memory_mib: dict[str, float]  # before / peak / after, when the server's pid is known
    after_ok: bool  # the server answered a plain request normally after the load
    after_seconds: float

    @property
    def answered(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 200 and not o.problem]

    @property
    def refused(self) -> list[Outcome]:
        """Back-pressure (429) or no replica able to answer (503): sent again."""
        return [o for o in self.outcomes if retried(o) and not o.cut]

    @property
    def cut(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.cut]

    @property
    def lost(self) -> list[Outcome]:
        return [o for o in self.outcomes if o not in self.answered and not retried(o)]

    def format(self) -> str:
        answered = self.answered
        latency = [o.seconds for o in answered]
        first = [o.first_token_s for o in answered if o.first_token_s is not None]
        tokens = sum(o.usage.get("completion_tokens", 0) for o in answered)
        lines = [
            (
                f"load: {self.clients} clients sending for {self.sending_s:g} s "
                f"(last answer at {self.seconds:.0f} s)"
            ),
            (
                f"requests: {len(self.outcomes)} sent, {len(answered)} answered (200), "
                f"{len(self.refused)} refused (429/503), {len(self.cut)} cut by a lost replica, "
                f"{len(self.lost)} lost, {len(self.mixed_up)} mixed up"
            ),
            (
                f"throughput: {len(answered) / self.seconds:.2f} answers/s, "
                f"{tokens / self.seconds:.1f} generated tokens/s"
            ),
            (
                f"latency (answered, queueing included): p50 {percentile(latency, 50):.2f} s, "
                f"p95 {percentile(latency, 95):.2f} s"
            ),
        ]
        for kind in KINDS:
            times = [o.seconds for o in answered if o.kind == kind]
            if times:
                lines.append(
                    f"  {kind:<13} {len(times):4d} answered, p50 {percentile(times, 50):.2f} s, "
                    f"p95 {percentile(times, 95):.2f} s"
                )
        if first:
            lines.append(
                f"first token (streamed): p50 {percentile(first, 50):.2f} s, "
                f"p95 {percentile(first, 95):.2f} s"
            )
        if self.memory_mib:
            m = self.memory_mib
            lines.append(
                f"server memory (RSS): {m['before']:.0f} MiB before, {m['peak']:.0f} MiB peak, "
                f"{m['after']:.0f} MiB after"
            )
        lines.append(
            f"after the load: {'answered normally' if self.after_ok else 'NOT ANSWERED'} "
            f"in {self.after_seconds:.2f} s"
        )
        for outcome in self.lost[:5]:
            lines.append(f"  lost: client {outcome.client} {outcome.kind}: {outcome.problem}")
        lines += [f"  mixed up: {description}" for description in self.mixed_up[:5]]
        return "\n".join(lines)

    @property
    def ok(self) -> bool:
        return not self.lost and not self.mixed_up and self.after_ok


def retried(outcome: Outcome) -> bool:
    """A clean refusal or cut, which the client sends again (client_loop)."""
    return outcome.status in (429, 503) or outcome.cut


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# ----------------------------------------------------------------------------- requests


def client_bodies(
    index: int, model: str, photo_urls: list[str], clips: list[str], max_tokens: int
) -> dict[str, dict]:
    """Client `index`'s four requests: its own question, photo and clip (base64 WAV)."""
    question = f"(client {index}) {QUESTIONS[index % len(QUESTIONS)]}"
    photo = {"type": "image_url", "image_url": {"url": photo_urls[index % len(photo_urls)]}}
    clip = {
        "type": "input_audio",
        "input_audio": {"data": clips[index % len(clips)], "format": "wav"},
    }
    text = {"type": "text", "text": question}
    parts = {
        "text": [text],
        "photo": [text, photo],
        "speech": [clip],
        "photo+speech": [photo, clip],
    }
    return {
        kind: {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        for kind, content in parts.items()
    }


def send(http: httpx.Client, body: dict, stream: bool, client: int, kind: str) -> Outcome:
    start = time.perf_counter()
    outcome = Outcome(client, kind, stream, None, 0.0)
    try:
        if stream:
            body = {**body, "stream": True, "stream_options": {"include_usage": True}}
            with http.stream("POST", "/v1/chat/completions", json=body) as response:
                outcome.status = response.status_code
                outcome.replica = response.headers.get("x-lunettes-replica", "")
                if response.status_code == 200:
                    read_stream(response, outcome, start)
                else:
                    read_refusal(response.read(), response.headers, outcome)
        else:
            response = http.post("/v1/chat/completions", json=body)
            outcome.status = response.status_code
            outcome.replica = response.headers.get("x-lunettes-replica", "")
            if response.status_code == 200:
                answer = response.json()
                outcome.answer = answer["choices"][0]["message"]["content"]
                outcome.usage = answer["usage"]
                outcome.heard = answer["lunettes"]["heard"]
            else:
                read_refusal(response.content, response.headers, outcome)
    except (httpx.HTTPError, ValueError, KeyError) as error:
        outcome.problem = f"{type(error).__name__}: {error}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def read_stream(response: httpx.Response, outcome: Outcome, start: float) -> None:
    pieces, done = [], False
    for line in response.iter_lines():
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            break
        chunk = json.loads(line[6:])
        if "error" in chunk and chunk["error"].get("code") == "replica_lost":
            outcome.cut = True
            return
        if "error" in chunk:
            outcome.problem = f"error in the stream: {chunk['error']['message']}"
            return
        if chunk.get("usage"):
            outcome.usage = chunk["usage"]
        for choice in chunk["choices"]:
            if choice["delta"].get("content"):
                outcome.first_token_s = outcome.first_token_s or time.perf_counter() - start
                pieces.append(choice["delta"]["content"])
            if choice["finish_reason"] is not None:  # the last chunk lists all that was heard
                outcome.heard = chunk["lunettes"]["heard"]
    outcome.answer = "".join(pieces)
    if not done:
        outcome.problem = "the stream ended without [DONE]"


def read_refusal(content: bytes, headers: httpx.Headers, outcome: Outcome) -> None:
    error = json.loads(content)["error"]  # every refusal is OpenAI's error JSON
    if outcome.status in (429, 503):
        outcome.retry_after_s = float(headers.get("retry-after", "1"))
    else:
        outcome.problem = f"HTTP {outcome.status}: {error['message']}"


def client_loop(
    index: int, http: httpx.Client, bodies: dict[str, dict], deadline: float, outcomes: list
) -> None:
    """Sends the client's requests in turn; one refused or cut is sent again (after its
    Retry-After) until it is answered, even past the deadline."""
    count = 0
    while time.monotonic() < deadline:
        kind = KINDS[(index + count) % len(KINDS)]
        while True:
            outcome = send(http, bodies[kind], stream=count % 2 == 1, client=index, kind=kind)
            outcomes.append(outcome)
            if not retried(outcome):
                break
            time.sleep(0.0 if outcome.cut else min(outcome.retry_after_s, 5.0))
        count += 1


def asks_to_read(client: int) -> bool:
    """Whether the client's spoken question asks for the words in view."""
    return "read" in SENTENCES[client % len(SENTENCES)].lower()


def mix_ups(outcomes: list[Outcome], photo_tokens: int | None = None) -> list[str]:
    """Requests whose answer, usage or transcript differ from the first answer to the same
    request, or whose usage does not fit what was sent."""
    first: dict[tuple[int, str], Outcome] = {}
    problems = []
    for outcome in outcomes:
        if outcome.status != 200 or outcome.problem:
            continue
        key = (outcome.client, outcome.kind)
        details = outcome.usage.get("prompt_tokens_details", {})
        has_photo, has_speech = "photo" in outcome.kind, "speech" in outcome.kind
        # "Please read the sign" said with a photo: its text stands for the photo in that turn
        # when the photo has text (fusion/photo_text), so it may take no image tokens
        reads = outcome.kind == "photo+speech" and asks_to_read(outcome.client)
        if ((details.get("image_tokens", 0) > 0) != has_photo and not reads) or (
            details.get("audio_tokens", 0) > 0
        ) != has_speech:
            problems.append(f"client {outcome.client} {outcome.kind}: usage {details}")
        if len(outcome.heard) != int(has_speech):
            problems.append(f"client {outcome.client} {outcome.kind}: heard {outcome.heard}")
        reference = first.setdefault(key, outcome)
        for name in ("answer", "usage", "heard"):
            if getattr(outcome, name) != getattr(reference, name):
                problems.append(
                    f"client {outcome.client} {outcome.kind} (stream={outcome.stream}): {name} "
                    f"{getattr(outcome, name)!r} != {getattr(reference, name)!r}"
                )
    return problems


def run_load(
    base_url: str,
    bodies: list[dict[str, dict]],
    seconds: float,
    api_key: str | None = None,
    server_pid: int | None = None,
) -> LoadReport:
    """len(bodies) clients, each sending its own bodies (kind -> request) for `seconds`."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    memory = MemorySampler(server_pid)
    outcomes: list[Outcome] = []
    clients = [
        httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S) for _ in bodies
    ]
    start = time.monotonic()
    deadline = start + seconds
    threads = [
        threading.Thread(target=client_loop, args=(i, http, own, deadline, outcomes))
        for i, (http, own) in enumerate(zip(clients, bodies))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    after = send(clients[0], bodies[0]["text"], stream=False, client=0, kind="text")
    for http in clients:
        http.close()
    return LoadReport(
        clients=len(bodies),
        sending_s=seconds,
        seconds=elapsed,
        outcomes=outcomes,
        mixed_up=mix_ups([*outcomes, after]),
        memory_mib=memory.stop(),
        after_ok=after.status == 200 and not after.problem,
        after_seconds=after.seconds,
    )


class MemorySampler:
    """The resident memory of a process, sampled every 0.2 s from /proc (Linux)."""

    def __init__(self, pid: int | None):
        self.path = Path(f"/proc/{pid}/status") if pid else None
        self.samples: list[float] = []
        self.running = self.path is not None and self.path.exists()
        if self.running:
            self.samples.append(self.read())
            self.thread = threading.Thread(target=self.loop, daemon=True)
            self.thread.start()

    def read(self) -> float:
        for line in self.path.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def loop(self) -> None:
        while self.running:
            self.samples.append(self.read())
            time.sleep(0.2)

    def stop(self) -> dict[str, float]:
        if not self.running:
            return {}
        self.running = False
        self.thread.join()
        self.samples.append(self.read())
        return {"before": self.samples[0], "peak": max(self.samples), "after": self.samples[-1]}


# ----------------------------------------------------------------------------- the embedded bundle


def data_url(path: Path) -> str:
    mime = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def spoken_clips(folder: Path) -> list[str]:
    """espeak-ng WAVs of SENTENCES, base64; a tone when espeak-ng is missing."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        print("espeak-ng not found: the clips are tones, not speech", file=sys.stderr)
        import io

        import numpy as np
        import soundfile

        buffer = io.BytesIO()
        tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)
        soundfile.write(buffer, tone.astype(np.float32), 16000, format="WAV")
        return [base64.b64encode(buffer.getvalue()).decode()]
    clips = []
    for index, sentence in enumerate(SENTENCES):
        path = folder / f"sentence-{index}.wav"
        subprocess.run([espeak, "-w", str(path), sentence], check=True, capture_output=True)
        clips.append(base64.b64encode(path.read_bytes()).decode())
    return clips


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, *options: str) -> subprocess.Popen:
    """`lunettes serve` on 127.0.0.1:port with `options`, once its API answers."""
    command = [
        sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
        *options,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "LUNETTES_API_KEY"}
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise SystemExit("the server did not start within 300 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-tokens", type=int, default=24, help="per answer (default: 24)")
    parser.add_argument("--max-waiting", type=int, default=31, help="the started server's queue")
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--api-key", default=os.environ.get("LUNETTES_API_KEY"))
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    args = parser.parse_args(argv)

    server = None
    if args.url is None:
        port = free_port()
        print(f"starting `lunettes serve` on 127.0.0.1:{port} (embedded bundle)...", flush=True)
        server = start_server(port, "--max-waiting", str(args.max_waiting))
        args.url = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory() as folder:
            clips = spoken_clips(Path(folder))
        photos = [data_url(p) for p in sorted((ROOT / "assets" / "examples").glob("*.jpg"))]
        bodies = [
            client_bodies(i, "lunettes", photos, clips, args.max_tokens)
            for i in range(args.clients)
        ]
        print(f"{args.clients} clients for {args.seconds:g} s against {args.url}...", flush=True)
        report = run_load(
            args.url, bodies, args.seconds, args.api_key, server.pid if server else None
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    print(report.format())
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in report.outcomes], indent=1))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
