"""How many OpenMP threads a decode step runs on, chosen from the steps' own times.

A decode step is ~211 small parallel regions, each ending when the slowest thread of its
team is done. While the cores are the decoder's alone, a team of two is the faster (one
stream, 2-core AVX2 EPYC, 2026-12-05: 24.3 tok/s with two threads, 18.1 with one). When
something else takes a core (the wearer's browser on the same machine, the voice being
synthesised, the next question's encoders), a team of two collapses: every region waits for
the thread that is not running. Beside one process spinning on one core: 7.3 tok/s with two
threads, 18.3 with one. libgomp's own remedy, OMP_DYNAMIC, sizes a team from the one-minute
load average, which counts the decoder's own threads and follows a change a minute late.

So the decode thread times its steps. For each team size and batch size it keeps a moving
average of a step's time; it steps with the faster size, and every PROBE_EVERY steps it
tries the other once, to see whether the cores have changed. A try's time replaces that
size's average (what it held is stale), so one try may bring the size back into use; should
it be slower than the try said, its average rises within a step or two.
"""

PROBE_EVERY = 32  # steps between two tries of the size not in use
WEIGHT = 0.3  # of a step's time in its size's moving average


class TeamSizes:
    def __init__(self, most: int):
        """most: the largest team (torch's thread count); the other size tried is 1."""
        self.sizes = (most, 1) if most > 1 else (1,)
        self._step_s: dict[tuple[int, int], float] = {}  # (rows, team size) -> moving average
        self._steps = 0
        self._timed_at: dict[tuple[int, int], int] = {}  # ... and the step it was last timed at

    def next(self, rows: int) -> int:
        """The team size for the next step of a batch of `rows` rows."""
        if len(self.sizes) == 1:
            return self.sizes[0]
        self._steps += 1
        times = {size: self._step_s.get((rows, size)) for size in self.sizes}
        untried = [size for size, seconds in times.items() if seconds is None]
        if untried:
            return untried[0]
        best = min(self.sizes, key=times.__getitem__)
        if self._steps % PROBE_EVERY == 0:
            return next(size for size in self.sizes if size != best)
        return best

    def took(self, rows: int, size: int, seconds: float) -> None:
        """A step of `rows` rows took `seconds` with a team of `size`."""
        key = (rows, size)
        average = self._step_s.get(key)
        stale = self._steps - self._timed_at.get(key, self._steps) > 2  # a try, not a run
        if average is None or stale:
            self._step_s[key] = seconds
        else:
            self._step_s[key] = average + WEIGHT * (seconds - average)
        self._timed_at[key] = self._steps
