"""The decode team's size follows the measured step times: the size in use kept, the other
tried every PROBE_EVERY steps, the faster chosen, and a change of the cores followed."""

from fusion.team_size import PROBE_EVERY, TeamSizes


def run(sizes: TeamSizes, steps: int, step_s: dict[int, float], rows: int = 1) -> list[int]:
    """`steps` steps whose time depends on the team size as `step_s` says -> sizes used."""
    used = []
    for _ in range(steps):
        size = sizes.next(rows)
        sizes.took(rows, size, step_s[size])
        used.append(size)
    return used


def test_the_size_in_use_is_kept_the_other_tried_every_probe_and_the_faster_chosen():
    sizes = TeamSizes(2)
    used = run(sizes, 4 * PROBE_EVERY, {2: 0.040, 1: 0.055})  # idle cores: two is faster
    assert used[: PROBE_EVERY - 1] == [2] * (PROBE_EVERY - 1)
    assert [i for i, size in enumerate(used) if size == 1] == [
        PROBE_EVERY * k - 1 for k in range(1, 5)
    ]  # one try every PROBE_EVERY steps, nothing else


def test_a_busy_core_moves_the_team_to_one_thread_and_back_when_it_is_free():
    sizes = TeamSizes(2)
    run(sizes, PROBE_EVERY, {2: 0.040, 1: 0.055})
    busy = run(sizes, 2 * PROBE_EVERY, {2: 0.140, 1: 0.057})  # a core taken: two collapses
    assert busy[-PROBE_EVERY // 2 :].count(1) >= PROBE_EVERY // 2 - 1
    free = run(sizes, 3 * PROBE_EVERY, {2: 0.040, 1: 0.055})  # the core is back
    assert free[-PROBE_EVERY // 2 :].count(2) >= PROBE_EVERY // 2 - 1


def test_a_new_batch_size_keeps_the_size_in_use_until_both_are_timed():
    sizes = TeamSizes(2)
    run(sizes, PROBE_EVERY, {2: 0.040, 1: 0.055}, rows=1)
    run(sizes, PROBE_EVERY, {2: 0.140, 1: 0.057}, rows=1)  # a core taken: one thread in use
    assert run(sizes, 3, {2: 0.300, 1: 0.110}, rows=8) == [1, 1, 1]  # eight rows: as in use
    used = run(sizes, 2 * PROBE_EVERY, {2: 0.090, 1: 0.110}, rows=8)  # ... until two is tried
    assert used[-PROBE_EVERY // 2 :].count(2) >= PROBE_EVERY // 2 - 1


def test_a_team_of_one_stays_one():
    sizes = TeamSizes(1)
    assert run(sizes, 3, {1: 0.05}) == [1, 1, 1]
