"""`lunettes remember`, `moments`, `forget`, `export` from the command line (text needs no
model), and `recall` answered by the real embedded bundle (marked `bundle`)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lunettes(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )  # fmt: skip


def test_remember_list_export_and_forget(tmp_path):
    kept = lunettes(tmp_path, "remember", "Remember that my umbrella is in the boot of the car")
    assert kept.returncode == 0, kept.stderr
    assert "remembered (moment 1): my umbrella is in the boot of the car" in kept.stdout
    listed = lunettes(tmp_path, "moments")
    assert "your umbrella is in the boot of the car" in listed.stdout
    exported = json.loads(lunettes(tmp_path, "export").stdout)
    assert [m["note"] for m in exported["moments"]] == ["my umbrella is in the boot of the car"]
    missing = lunettes(tmp_path, "forget", "--moment", "99")
    assert missing.returncode == 2 and "no moment 99" in missing.stderr
    assert lunettes(tmp_path, "forget", "--moment", "1").returncode == 0
    assert "No moments yet" in lunettes(tmp_path, "moments").stdout


def test_nothing_to_remember_and_a_foreign_database_are_clear_errors(tmp_path):
    empty = lunettes(tmp_path, "remember", "  ")
    assert empty.returncode == 2 and "nothing to remember" in empty.stderr
    (tmp_path / "lunettes.db").write_bytes(b"not a database" * 100)
    broken = lunettes(tmp_path, "moments")
    assert broken.returncode == 2 and "not a database" in broken.stderr
    assert "Traceback" not in broken.stderr


@pytest.mark.bundle
def test_recall_answers_from_the_moment(tmp_path):
    lunettes(tmp_path, "remember", "Remember that I parked on level 3, row F")
    lunettes(tmp_path, "remember", "Remember that the dentist is on Thursday")
    answer = lunettes(tmp_path, "recall", "Where did I park the car?")
    assert answer.returncode == 0, answer.stderr
    assert "3" in answer.stdout and "dentist" not in answer.stdout.lower()
    nothing = lunettes(tmp_path, "recall", "What is the capital of France?")
    assert "Nothing you asked me to remember matches" in nothing.stdout
