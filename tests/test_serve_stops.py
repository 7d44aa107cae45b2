"""`lunettes serve` stops at Ctrl+C: at once, cleanly, with a page open or while it warms up.

An open page holds two streams (Gradio's heartbeat and its event stream, kept open by
app/event_stream.py) that uvicorn would wait for as long as the tab stays open; the warm-up
thread (app/warm_up.py) still inside torch as the process ends aborted it ("terminate called
without an active exception"). The server runs in a subprocess, as a person starts it.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.browser import launch_chromium
from bench.load_test import free_port
from tests.replicas_server import serving
from tests.web_support import needs_chromium, open_app, send, wait_for_answers

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120  # the bundle's load on a busy 2-core machine
STOPPED_WITHIN_S = 15  # app/server.py's STOP_GRACE_S and the model's own shutdown, with room
SERVE = "from app.server import serve; serve({model}, '127.0.0.1', {port})"


def stop(process: subprocess.Popen, log: Path) -> tuple[float, str]:
    """Ctrl+C -> (seconds until the process ended, what it printed)."""
    start = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:
        process.wait(STOPPED_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still serving {STOPPED_WITHIN_S} s after Ctrl+C:\n{log.read_text()[-2000:]}")
    return time.monotonic() - start, log.read_text()


@needs_chromium
def test_ctrl_c_stops_the_server_with_a_page_open(tmp_path):
    from playwright.sync_api import sync_playwright

    port, log = free_port(), tmp_path / "serve.log"
    code = SERVE.format(model="__import__('tests.tiny').tiny.tiny_model()", port=port)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    served = serving([sys.executable, "-c", code], log, environment, START_TIMEOUT_S)
    with served as process, sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            page = open_app(chromium.new_context(), f"http://127.0.0.1:{port}/")
            send(page, "Hello there")
            wait_for_answers(page, 1)
            _, printed = stop(process, log)
        finally:
            chromium.close()
    assert process.returncode == 0, printed
    assert "Traceback" not in printed and "terminate called" not in printed, printed


@pytest.mark.bundle
def test_ctrl_c_while_the_server_warms_up_ends_it_cleanly(tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-history"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    with serving(command, log, environment, START_TIMEOUT_S) as process:
        _, printed = stop(process, log)  # the warm-up takes seconds: it is still running
    assert process.returncode == 0, printed
    assert "terminate called" not in printed and "Traceback" not in printed, printed
