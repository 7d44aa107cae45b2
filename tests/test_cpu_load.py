"""The cores other processes keep busy: a process spinning beside us is seen, this process's own
work is not, and work that starts beside a busy core gets a team of one."""

import subprocess
import sys
import time

import pytest

from fusion.cpu_load import BUSY_ELSEWHERE, OthersLoad

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/stat, which only Linux has"
)


def test_a_process_spinning_beside_this_one_is_seen():
    load = OthersLoad()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # its start
        load.cores()
        time.sleep(0.6)
        assert load.cores() >= BUSY_ELSEWHERE
        assert load.team_size(2) == 1
    finally:
        spinner.kill()
        spinner.wait()


def test_this_process_s_own_work_is_not_counted():
    load = OthersLoad()
    time.sleep(0.2)
    load.cores()
    time.sleep(0.6)
    quiet = load.cores()  # whatever else the machine runs
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # a core kept busy here
        pass
    assert load.cores() - quiet < BUSY_ELSEWHERE


def test_nothing_known_yet_keeps_a_team_whole_and_a_second_look_at_once_repeats_the_first():
    load = OthersLoad()
    assert load.team_size(2) == 2  # the first look: too soon after the start to tell
    time.sleep(0.2)
    first = load.cores()
    assert first is not None and load.cores() == first
