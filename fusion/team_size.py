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
average of a step's time. It steps with the size in use, tries the other every PROBE_EVERY
steps to see whether the cores have changed, and changes to the other once that one is 10%
faster on the same batch size (not on a step's noise). A batch size not yet timed with both
keeps the size in use until a try times the other (trying each new batch size at once cost
8 answers at once ~6% of their speed). A try's time replaces that size's average (what it
held is stale), so one try may bring the size back into use; should it be slower than the
try said, its average rises within a step or two.
"""

PROBE_EVERY = 32  # steps between two tries of the size not in use
WEIGHT = 0.3  # of a step's time in its size's moving average
MARGIN = 0.9  # the other size is taken when its steps are at least 10% shorter


class TeamSizes:
    def __init__(self, most: int):
        """most: the largest team (torch's thread count); the other size tried is 1."""
        self.sizes = (most, 1) if most > 1 else (1,)
        self._step_s: dict[tuple[int, int], float] = {}  # (rows, team size) -> moving average
        self._steps = 0
        self._timed_at: dict[tuple[int, int], int] = {}  # ... and the step it was last timed at
        self._in_use = self.sizes[0]

    def next(self, rows: int) -> int:
        """The team size for the next step of a batch of `rows` rows."""
        if len(self.sizes) == 1:
            return self.sizes[0]
        self._steps += 1
        in_use, other = self._in_use, next(size for size in self.sizes if size != self._in_use)
        timed = self._step_s.get((rows, in_use)), self._step_s.get((rows, other))
        if None not in timed and timed[1] < MARGIN * timed[0]:
            self._in_use, other = other, in_use
        return other if self._steps % PROBE_EVERY == 0 else self._in_use

    @property
    def in_use(self) -> int:
        """The size steps run on (between two tries), and prefills too."""
        return self._in_use

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
