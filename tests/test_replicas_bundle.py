"""`lunettes serve --replicas 2` as a person runs it: the command itself, on the real embedded
bundle, with history in a data folder. The official `openai` client asks about a photo; the
answers come from both replicas and name them; the page is served with its cookies.

Ray's start and two bundle loads take ~30 s on 2 cores; one server for the module.
"""

import base64
import os
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from bench.load_test import free_port
from tests.replicas_server import serving

pytestmark = pytest.mark.bundle

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "assets" / "examples" / "cat.jpg"
READY_TARGET_S = 60  # the target: answering within 60 s of launch


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    port, data = free_port(), tmp_path_factory.mktemp("data")
    command = [
        sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--replicas", "2",
        "--data-dir", str(data),
    ]  # fmt: skip
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("LUNETTES_API_KEY", None)
    log = tmp_path_factory.mktemp("log") / "serve.log"
    started = time.monotonic()
    with serving(command, log, env, 180):
        ready_s = time.monotonic() - started
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 200
        yield url, ready_s, data


def test_a_photo_question_is_answered_by_both_replicas(launched):
    url, ready_s, _ = launched
    assert ready_s < READY_TARGET_S
    photo = "data:image/jpeg;base64," + base64.b64encode(PHOTO.read_bytes()).decode()
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
    answers = []
    content = [
        {"type": "text", "text": "What animal is this?"},
        {"type": "image_url", "image_url": {"url": photo}},
    ]

    def ask() -> None:
        answers.append(
            client.chat.completions.create(
                model="lunettes",
                messages=[{"role": "user", "content": content}],
                max_tokens=8,
                temperature=0,
            )
        )

    for _ in range(4):  # rounds of 6 at once, until both replicas were seen answering
        threads = [threading.Thread(target=ask) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if len({answer.lunettes["replica"]["pid"] for answer in answers}) == 2:
            break
    assert len(answers) % 6 == 0
    assert len({answer.choices[0].message.content for answer in answers}) == 1  # greedy, alike
    assert "cat" in answers[0].choices[0].message.content.lower()
    assert len({answer.lunettes["replica"]["pid"] for answer in answers}) == 2


def test_the_page_comes_with_both_cookies(launched):
    url, _, data = launched
    page = httpx.get(url + "/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert {"lunettes_replica", "lunettes_browser"} <= set(page.cookies)
    assert (data / "lunettes.db").exists()  # each replica opened the one store
