"""How many cores the rest of the machine kept busy lately: the CPU time of every process
(/proc/stat) less this process's own (os.times), over the time since the last look.

A team of OpenMP threads as large as the cores collapses when another process takes one of
them: each parallel region waits for the thread that is not running (team_size.py). The
decode thread learns this from its own step times; work that runs now and then, such as a
hands-free question's preparation (app/web_partial.py), asks this instead. The preparation
of a photo + spoken question (encoding, beam search, reading, prefill), 8 each way in a
worker thread (2-core AVX2 EPYC, 2026-12-05): idle, a team of two 586 ms, of one 767 ms;
beside a process busy 30% of the time on one core, two 816 ms, one 820 ms; beside one
spinning all the time, two 1613 ms, one 1086 ms. Hence BUSY_ELSEWHERE. (In the hands-free
browser bench the browser kept 0.25-0.43 of a core busy while a question was prepared: the
team stays two there.)
"""

import os
import time

BUSY_ELSEWHERE = 0.5  # cores used by others from which a team of one is the faster


MIN_WINDOW_S = 0.1  # shorter than this since the last look: the last figure stands


class OthersLoad:
    def __init__(self):
        self._last = _sample()
        self._cores: float | None = None  # the last figure

    def cores(self) -> float | None:
        """Cores the other processes kept busy since the last look, on average (called
        sooner than MIN_WINDOW_S after it: the last figure; None: not known, as without
        /proc/stat)."""
        now, last = _sample(), self._last
        if now is None or last is None:
            self._last = now
            return None
        if now[2] - last[2] < MIN_WINDOW_S:
            return self._cores
        self._last = now
        (busy, own, at), (busy_now, own_now, at_now) = last, now
        self._cores = max(0.0, ((busy_now - busy) - (own_now - own)) / (at_now - at))
        return self._cores

    def team_size(self, most: int) -> int:
        """The team for work that starts now: one thread when others keep BUSY_ELSEWHERE of
        a core or more busy, else `most`."""
        cores = self.cores()
        return 1 if cores is not None and cores >= BUSY_ELSEWHERE else most


def _sample() -> tuple[float, float, float] | None:
    """(busy CPU seconds of the whole machine, of this process, time.monotonic()), or None."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
    busy = (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    own = sum(os.times()[:2])  # this process's user and system seconds, all its threads
    return busy, own, time.monotonic()
