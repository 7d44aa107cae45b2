"""OpenMP teams (fusion/openmp.py): a thread done with torch work lets its idle team of
worker threads go, so the decode thread's team is the only one left spinning.

Threads are counted in /proc/self/task (Linux): libgomp's workers are threads of the
process. Each check runs in a thread of its own with a team of two, whatever the CPU count.
"""

import os
import sys
import threading

import pytest
import torch

from fusion.conversation import user
from fusion.generate import GenerationOptions
from fusion.model import Chunk
from fusion.openmp import TeamReleasingLock, one_thread_here, release_here, set_threads_here
from tests.api_support import wait_until

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="threads are counted in /proc/self/task"
)


def threads_now() -> int:
    return len(os.listdir("/proc/self/task"))


def parallel_op() -> None:
    """An op torch runs as an OpenMP parallel region (4M elements, far above its grain)."""
    torch.ones(4_000_000).exp_()


def in_a_thread(body) -> list[int]:
    """Run body(counts) in a fresh thread with a team of two; -> the thread counts it noted."""
    counts: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            set_threads_here(2)
            body(counts)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return counts


def test_a_thread_lets_its_team_go():
    def body(counts: list[int]) -> None:
        counts.append(threads_now())
        parallel_op()
        counts.append(threads_now())  # its team's worker waits for the next region
        release_here()
        counts.append(threads_now())
        parallel_op()  # a new team for the next parallel op
        counts.append(threads_now())
        release_here()

    before, with_team, released, again = in_a_thread(body)
    assert with_team == before + 1
    assert released == before
    assert again == before + 1


def test_work_on_one_thread_makes_no_team_and_the_team_comes_back_after():
    def body(counts: list[int]) -> None:
        counts.append(threads_now())
        with one_thread_here():
            parallel_op()
            counts.append(threads_now())  # the region ran on this thread alone
        parallel_op()
        counts.append(threads_now())  # a team of two again
        release_here()

    before, inside, after = in_a_thread(body)
    assert inside == before
    assert after == before + 1


def test_the_media_lock_lets_its_holders_team_go():
    lock = TeamReleasingLock()

    def body(counts: list[int]) -> None:
        counts.append(threads_now())
        with lock:
            parallel_op()
            counts.append(threads_now())
        counts.append(threads_now())

    before, holding, after = in_a_thread(body)
    assert holding == before + 1
    assert after == before
    with lock:  # and it was unlocked
        pass


def test_an_answer_decoded_by_the_scheduler_leaves_no_team_in_the_asking_thread(model, monkeypatch):
    """The asking thread's own work (encoders, the prompt's projections) makes a team; it
    waits for the decode thread's tokens without it."""
    model.share()
    options = GenerationOptions(max_new_tokens=4)
    list(model.stream([user("Hello")], options))  # the decode thread started, the prompt kept
    build_inputs = model.build_inputs

    def build_inputs_in_parallel(messages, opening=""):  # as the real model's projections are
        parallel_op()
        return build_inputs(messages, opening)

    monkeypatch.setattr(model, "build_inputs", build_inputs_in_parallel)

    def body(counts: list[int]) -> None:
        counts.append(threads_now())
        chunks = [e for e in model.stream([user("Hello there")], options) if isinstance(e, Chunk)]
        assert chunks
        counts.append(threads_now())

    before, answered = in_a_thread(body)
    assert answered == before


def test_the_idle_decode_thread_lets_its_team_go(model, monkeypatch):
    """While no answer is decoded, the decode thread's team would count against the threads
    that encode the next question (on the real model: its first token ~170 ms later)."""
    model.unshare()  # a new decode thread, with a team of two whatever the CPU count
    model.share()
    scheduler = model.decoder
    scheduler.threads = 2
    step = scheduler.decoder.step
    during: list[int] = []

    def step_in_parallel():  # as the real model's layers are
        parallel_op()
        during.append(threads_now())
        return step()

    monkeypatch.setattr(scheduler.decoder, "step", step_in_parallel)
    list(model.stream([user("Hello")], GenerationOptions(max_new_tokens=4)))
    assert during, "the answer was decoded without a step"
    assert wait_until(lambda: threads_now() == during[-1] - 1), (
        f"{threads_now()} threads once idle, {during[-1]} while decoding"
    )
