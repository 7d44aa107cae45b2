"""`lunettes serve --replicas 2` on loopback, on real Ray Serve, with the tiny models: answers
come from both replicas and name them; a web page stays with one replica; one replica
SIGKILLed under 8-client load loses no request and hangs none, and Ray brings it back.

One Ray cluster for the module (its start takes ~15-30 s on 2 cores), in a subprocess
(tests/replicas_server.py) that the test stops with SIGTERM, as a person's Ctrl+C would.
"""

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from app.cli import main
from app.replicas.launch import Scale
from bench.browser import launch_chromium
from bench.load_test import free_port
from tests.replicas_server import serving
from tests.web_support import (
    needs_chromium,
    open_app,
    send,
    wait_for_answers,
    wait_until_ready,
)

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 180  # Ray, Serve and two replicas on a busy 2-core CI machine
ANSWER_TIMEOUT_S = 60  # one request, retries included: more is a hang
ASK = {"model": "lunettes", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    port, data = free_port(), tmp_path_factory.mktemp("data")
    log = tmp_path_factory.mktemp("log") / "serve.log"
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    command = [sys.executable, "-m", "tests.replicas_server", str(port), "2", str(data)]
    with serving(command, log, environment, START_TIMEOUT_S):
        yield f"http://127.0.0.1:{port}"


def replica_of(response: httpx.Response) -> tuple[str, int]:
    replica_id, pid = response.headers["x-lunettes-replica"].split()
    return replica_id, int(pid)


def ask(client: httpx.Client, url: str, stream: bool) -> tuple[str, dict]:
    """One question, retried as a client should (429/503 after Retry-After; a stream that
    reports its replica lost, or a cut connection) -> (answer, its lunettes.replica)."""
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while True:
        assert time.monotonic() < deadline, "a request was not answered in time"
        try:
            if not stream:
                response = client.post(f"{url}/v1/chat/completions", json=ASK)
                if response.status_code in (429, 503):
                    time.sleep(min(float(response.headers["retry-after"]), 2))
                    continue
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["lunettes"]["replica"]["pid"] == replica_of(response)[1]
                return body["choices"][0]["message"]["content"], body["lunettes"]["replica"]
            with client.stream(
                "POST", f"{url}/v1/chat/completions", json=ASK | {"stream": True}
            ) as response:
                if response.status_code in (429, 503):
                    time.sleep(min(float(response.headers["retry-after"]), 2))
                    continue
                assert response.status_code == 200, response.read()
                events = [
                    json.loads(line[6:]) for line in response.iter_lines()
                    if line.startswith("data: {")
                ]  # fmt: skip
            if any("error" in event for event in events):
                assert events[-1]["error"]["code"] == "replica_lost", events[-1]
                continue
            text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
            return text, events[-1]["lunettes"]["replica"]
        except (httpx.RemoteProtocolError, httpx.ReadError):  # cut when its replica died
            continue


def test_eight_parallel_requests_are_answered_by_both_replicas(served):
    """Each goes to the less loaded of two replicas drawn at random. Rounds of 8 at once, a
    few at most: just after the start the front's router may not list the second replica
    yet (Ray's controller tells it a moment later)."""
    answers: list = []
    with httpx.Client(timeout=ANSWER_TIMEOUT_S) as client:
        for _ in range(5):
            threads = [
                threading.Thread(target=lambda i=i: answers.append(ask(client, served, i % 2 == 1)))
                for i in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if len({r["pid"] for _, r in answers}) == 2:
                break
            time.sleep(1)
    assert len(answers) % 8 == 0 and all(text for text, _ in answers)
    replicas = {(r["id"], r["pid"]) for _, r in answers}
    assert len(replicas) == 2, replicas


def test_the_front_refuses_what_no_replica_should_read(served):
    with httpx.Client(timeout=30) as client:
        too_big = client.post(
            f"{served}/v1/chat/completions",
            content=b"x" * (33 << 20), headers={"content-type": "application/json"},
        )  # fmt: skip
        assert too_big.status_code == 413 and "MiB" in too_big.json()["error"]["message"]
        unknown = client.post(f"{served}/v1/chat/completions", json=ASK | {"model": "gpt-9"})
        assert unknown.status_code == 404  # the replica's own answer, passed on unchanged
        assert unknown.json()["error"]["code"] == "model_not_found"


@needs_chromium
def test_a_web_page_stays_with_its_replica(served):
    """Two pages, one after the other, while API clients keep both replicas busy: every
    request of a page, its reload included, reaches the page's own replica."""
    from playwright.sync_api import sync_playwright

    busy = threading.Event()

    def api_traffic() -> None:  # a client asking now and then, as people do
        with httpx.Client(timeout=ANSWER_TIMEOUT_S) as client:
            while not busy.wait(0.3):
                ask(client, served, stream=True)

    traffic = [threading.Thread(target=api_traffic) for _ in range(2)]
    for thread in traffic:
        thread.start()
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            for _ in range(2):  # two browsers: each page keeps to its own replica
                context = chromium.new_context()
                replicas: set[str] = set()
                context.on(
                    "response",
                    lambda r, replicas=replicas: replicas.add(r.headers.get("x-lunettes-replica")),
                )
                page = open_app(context, served)
                send(page, "Hello there")
                wait_for_answers(page, 1, timeout_s=60)  # two Ray hops per update
                page.reload()
                wait_until_ready(page)
                send(page, "And again")
                wait_for_answers(page, 1, timeout_s=60)  # two Ray hops per update
                replicas.discard(None)
                assert len(replicas) == 1, replicas  # every request, the reload included
                context.close()
        finally:
            chromium.close()
            busy.set()
            for thread in traffic:
                thread.join()


def test_a_killed_replica_loses_no_request_and_comes_back(served):
    """8 clients ask for 20 s; one replica is SIGKILLed after 4 s: every question is answered
    (some after a clean retry), none hangs, and two replicas answer again within 60 s."""
    with httpx.Client(timeout=ANSWER_TIMEOUT_S) as client:
        _, victim = ask(client, served, stream=False)
        stop_at = time.monotonic() + 20
        answered: list[dict] = []
        failures: list[BaseException] = []

        def client_loop(index: int) -> None:
            try:
                while time.monotonic() < stop_at:
                    answered.append(ask(client, served, stream=index % 2 == 1)[1])
            except BaseException as error:  # noqa: BLE001 - reported by the test below
                failures.append(error)

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(4)
        killed_at = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        for thread in threads:
            thread.join(ANSWER_TIMEOUT_S + 30)
        assert not any(thread.is_alive() for thread in threads), "a client hung"
        assert not failures, failures[0]
        assert len(answered) >= 8, len(answered)
        after = set()
        while len(after - {(victim["id"], victim["pid"])}) < 2:
            assert time.monotonic() - killed_at < 60, f"only {after} answer 60 s after the kill"
            after.add(tuple(ask(client, served, stream=False)[1].values()))
    assert len({r["pid"] for r in answered} - {victim["pid"]}) >= 1


def test_scale_settings_are_checked():
    with pytest.raises(ValueError, match="go together"):
        Scale(min_replicas=1)
    with pytest.raises(ValueError, match="min-replicas <= --max-replicas"):
        Scale(min_replicas=3, max_replicas=2)
    with pytest.raises(ValueError, match="at least 1"):
        Scale(replicas=0)
    assert Scale(replicas=5, min_replicas=1, max_replicas=3).deployment_options() == {
        "autoscaling_config": {
            "min_replicas": 1, "initial_replicas": 3, "max_replicas": 3,
            "target_ongoing_requests": 8,
        }
    }  # fmt: skip


def test_bad_replica_settings_are_one_line(capsys):
    assert main(["serve", "--no-history", "--min-replicas", "2"]) == 2
    assert "--min-replicas and --max-replicas go together" in capsys.readouterr().err
