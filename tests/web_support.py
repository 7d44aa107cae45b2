"""Helpers for the web app's tests: a live server in a thread, Debian's Chromium driven by
Playwright with a fake camera and microphone, a model that answers at a set pace, page helpers.

No browser is downloaded: Chromium is /usr/bin/chromium (`make test` installs the Debian
package); without it the browser tests are skipped, saying so.
"""

import os
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bench.browser import CHROMIUM, FAKE_MICROPHONE_RATE, chromium_args
from encoders.audio_io import resample
from fusion.generate import GenerationOptions
from fusion.model import Chunk
from tests.api_support import LiveServer as ApiServer
from tests.tiny import tone

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
PHOTOS = ROOT / "assets" / "examples"
WAIT_MS = 20_000  # longest wait for anything on the page (the tiny model answers in ms)

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is missing: install Debian's chromium "
    "(LUNETTES_TESTS=1 bash scripts/system-packages.sh, as `make test` does)",
)


# -- inputs ---------------------------------------------------------------------------------------


def huge_png(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height (refused before its pixels are read)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def fake_microphone_wav(
    path: Path, text: str | None, lead_s: float = 1.0, pad_s: float = 2.0, voice: str = "en-us"
) -> Path:
    """A WAV for Chromium's fake microphone: lead_s of silence (the page starts recording a
    moment after the device opens), `text` spoken by espeak-ng in `voice` (a tone when None),
    then pad_s of silence; 16-bit mono at 48 kHz."""
    if text is None:
        samples, rate = tone(2.0, amplitude=0.3), 16_000
    else:
        spoken = path.with_suffix(".espeak.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(spoken), text], check=True)
        samples, rate = soundfile.read(spoken, dtype="float32")
    samples = resample(samples, rate, FAKE_MICROPHONE_RATE)
    silence = [np.zeros(round(s * FAKE_MICROPHONE_RATE), np.float32) for s in (lead_s, pad_s)]
    samples = np.concatenate([silence[0], samples, silence[1]])
    soundfile.write(path, samples, FAKE_MICROPHONE_RATE, subtype="PCM_16")
    return path


# -- the server --------------------------------------------------------------------------------


class PacedModel:
    """A model whose answer arrives at `pace_s` per piece (so streaming and Stop can be seen),
    at most `max_tokens` tokens (the tiny LM never stops by itself and reads 512), and which
    fails on a question containing FAIL_MARK."""

    FAIL_MARK = "FAIL-NOW"

    def __init__(self, model, pace_s: float = 0.05, max_tokens: int = 24):
        self.model, self.pace_s, self.max_tokens = model, pace_s, max_tokens

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def stream(
        self, messages, options: GenerationOptions | None = None, owner: str = ""
    ) -> Iterator:
        options = options or GenerationOptions()
        if self.FAIL_MARK in messages[-1].text:
            raise RuntimeError("a model failure on purpose")
        capped = min(options.max_new_tokens, self.max_tokens)
        kept = {**options.__dict__, "max_new_tokens": capped}
        for event in self.model.stream(messages, GenerationOptions(**kept), owner):
            if isinstance(event, Chunk):
                time.sleep(self.pace_s)
            yield event


class LiveServer(ApiServer):
    """`app.server.build_server(model)` (the API and the web app) served by uvicorn in a
    thread on a free loopback port; over HTTPS with `tls`, telling phones `phone`."""

    def __init__(self, model, tls=None, phone=None, store=None, ui_login=None):
        from app.server import NO_PHONE, build_server

        phone = phone or NO_PHONE
        served = build_server(model, ui_login=ui_login, phone=phone, tls=tls, store=store)
        super().__init__(served, tls)
        self.url += "/"


# -- the browser -------------------------------------------------------------------------------


def launch_phone(playwright, profile: Path, device: str, microphone_wav: Path, home: Path):
    """Debian's Chromium as a phone (`device`, one of Playwright's descriptors) with a profile
    of its own, as an installed browser has (a fresh context is incognito: nothing installs
    there); HOME holds its certificate store. Returns the browser context."""
    emulated = {k: v for k, v in playwright.devices[device].items() if k != "default_browser_type"}
    return playwright.chromium.launch_persistent_context(
        profile,
        executable_path=str(CHROMIUM),
        args=chromium_args(microphone_wav),
        env={**os.environ, "HOME": str(home)},
        **emulated,
    )


def open_app(context, url: str):
    """A new page on the app, loaded; the requests it makes are recorded in page.requested,
    those answered with an error or not at all in page.failed, its script errors in
    page.problems."""
    page = context.new_page()
    page.requested, page.problems, page.failed = [], [], []
    page.on("request", lambda request: page.requested.append(request.url))
    page.on(
        "response",
        lambda r: r.status >= 400 and page.failed.append(f"{r.status} {r.request.method} {r.url}"),
    )
    page.on("requestfailed", lambda r: page.failed.append(f"{r.failure} {r.method} {r.url}"))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.goto(url)
    wait_until_ready(page)
    return page


def wait_until_ready(page) -> None:
    """Wait until the app has mounted on a page just loaded or reloaded."""
    page.wait_for_selector("#conversation")
    page.wait_for_selector("#page-script", state="attached")


def send(page, text: str, files: list[Path] = ()) -> None:
    """Attach files, type the question and press Enter, as a person would."""
    if files:
        page.locator("#message input[type=file]").set_input_files([str(f) for f in files])
        uploaded = page.locator("#message .thumbnail-wrapper")  # one per file, once uploaded
        wait_until(lambda: uploaded.count() == len(files), what=f"{len(files)} files uploaded")
    box = page.locator("#message textarea")
    box.fill(text)
    box.press("Enter")


def user_messages(page):
    """The person's messages, one per question (photos, recording and text together)."""
    return page.locator("#conversation .user-row")


def bot_messages(page):
    """The assistant's messages, one per answer (the answer, then its timing note)."""
    return page.locator("#conversation .bot-row")


def answer_text(page, index: int = 0) -> str:
    """The text of an answer, without its timing note ("" before it starts)."""
    if bot_messages(page).count() <= index:
        return ""
    return bot_messages(page).nth(index).locator("[data-testid=bot]").first.inner_text()


def status(page) -> str:
    return page.locator("#status .lunettes-status").inner_text()


def wait_until(
    condition: Callable[[], bool], timeout_s: float = WAIT_MS / 1000, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def camera_state(page) -> str:
    """What the page's camera shows and sent, for a timeout's message: its button's label
    (Record, Waiting: the stream's start not yet acknowledged, Stop: streaming), its video's
    readiness and size, and the page's failed requests and script errors."""
    shown = page.evaluate(
        """() => {
            const video = document.querySelector('#camera video');
            const button = document.querySelector('#camera .button-wrap button');
            return {button: button ? button.innerText.trim() : null,
                    ready: video ? video.readyState : null,
                    size: video ? `${video.videoWidth}x${video.videoHeight}` : null};
        }"""
    )
    streamed = sum("/gradio_api/stream/" in url for url in page.requested)
    return f"{shown}, {streamed} frames posted, failed {page.failed}, errors {page.problems}"


def finished_answers(page) -> int:
    """How many answers are complete (each ends with its timing note)."""
    return page.locator("#conversation .bot-row .thought", has_text="⏱️").count()


def wait_for_answers(page, count: int, timeout_s: float = WAIT_MS / 1000) -> None:
    """Wait until `count` answers are complete; a timeout says what the page shows."""
    try:
        wait_until(lambda: finished_answers(page) >= count, timeout_s, f"{count} finished answers")
    except AssertionError as error:
        shown = (
            f"{user_messages(page).count()} questions, {bot_messages(page).count()} answers, "
            f"last answer {answer_text(page, max(bot_messages(page).count() - 1, 0))!r}, "
            f"status {status(page)!r}, script errors {getattr(page, 'problems', [])}, "
            f"failed requests {getattr(page, 'failed', [])}"
        )
        raise AssertionError(f"{error}; the page shows {shown}") from None


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None
