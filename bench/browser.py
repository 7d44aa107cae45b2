"""Debian's Chromium for the browser tests and benches: headless, a fake camera, and a WAV as
its microphone. No browser is downloaded: Chromium is /usr/bin/chromium (`make test`
installs the Debian package) or $LUNETTES_CHROMIUM."""

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("LUNETTES_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream",  # camera and microphone allowed without a prompt
    "--use-fake-device-for-media-stream",  # a generated camera picture
]  # fmt: skip
FAKE_MICROPHONE_RATE = 48_000  # Chromium's fake capture wants 44.1 or 48 kHz PCM WAV


def chromium_args(microphone_wav: Path | None) -> list[str]:
    """Chromium's switches; the WAV (played once, from when the microphone opens) as microphone."""
    args = list(CHROMIUM_ARGS)
    if microphone_wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone_wav}%noloop")
    return args


def launch_chromium(playwright, microphone_wav: Path | None = None):
    """Debian's Chromium, headless, with a fake camera and (when given) the WAV as microphone."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=chromium_args(microphone_wav)
    )
