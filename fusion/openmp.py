"""The OpenMP teams of this process's threads (libgomp, the runtime of torch's CPU ops).

A thread that runs a parallel torch op keeps a team of worker threads for its next one, idle
in between. libgomp counts every team's threads: once they outnumber the CPUs, the workers of
every team stop spinning between two parallel regions (a hundred spins, then they sleep), and
each region waits for its workers to wake. A decoded token is ~211 small regions. On 2 cores,
the idle team of the thread that had loaded the model made the decode thread's (scheduler.py)
two threads no faster than one.

So a thread done with torch work for now lets its team go (`release_here`): the holder of the
model's media lock as it lets go of it (`TeamReleasingLock`), an answer's thread before it
waits for the decode thread's tokens, the thread that shares the model with the scheduler,
and the decode thread itself when no answer is left (else its team slows the next question's
encoders: a spoken question's first token through the scheduler 714 -> 542 ms, medians of 6
in one process, 2026-12-04). The next parallel op of that thread makes a new team (a thread
start, microseconds).

One stream decoded in a second thread, its team of two (AMD EPYC, 2 cores, 96 tokens, medians
of 3 rounds in one process, 2026-12-04): 19.3 tok/s beside the loader's idle team, 29.9 once
that team was let go; 19.8 with a team of one (the scheduler's before); 31.2 in the loading
thread itself.
"""

import ctypes
import functools
import glob
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import torch


@functools.cache
def _runtime() -> ctypes.CDLL | None:
    """torch's own libgomp (else whatever the process has loaded), or None without one."""
    bundled = glob.glob(str(Path(torch.__file__).parent / "lib" / "libgomp*"))
    for library in [*bundled, None]:
        try:
            runtime = ctypes.CDLL(library)
        except OSError:
            continue
        if hasattr(runtime, "omp_set_num_threads") and hasattr(runtime, "omp_pause_resource_all"):
            return runtime
    return None


def set_threads_here(threads: int) -> None:
    """Size this thread's team only (torch.set_num_threads sets every thread's)."""
    runtime = _runtime()
    if runtime is not None:
        runtime.omp_set_num_threads(threads)


@contextmanager
def one_thread_here():
    """Inside, this thread's torch ops run on a team of one; after, on its team as before.
    For work whose result must be the same bits whoever runs it: a matrix product splits its
    sums between a team's threads, so a team of one and a team of two round it apart (a
    photo's LM tokens, LunettesModel.project_medium)."""
    runtime = _runtime()
    before = runtime.omp_get_max_threads() if runtime is not None else 0
    set_threads_here(1)
    try:
        yield
    finally:
        if before:
            set_threads_here(before)


def release_here() -> None:
    """Let this thread's idle team go (libgomp frees the calling thread's pool only). Never
    inside a parallel region: torch calls this file only from Python, between ops."""
    runtime = _runtime()
    if runtime is not None:
        runtime.omp_pause_resource_all(2)  # omp_pause_hard; libgomp treats both kinds alike


class TeamReleasingLock:
    """A lock whose holder lets its OpenMP team go as it releases the lock (the model's media
    lock: encoders run under it, in threads that then wait, or serve other things)."""

    def __init__(self):
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        self._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        try:
            release_here()
        finally:
            self._lock.release()
