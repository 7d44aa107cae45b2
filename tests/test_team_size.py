"""The decode team's size follows the measured step times: both sizes tried first, the faster
one kept, the other tried again every PROBE_EVERY steps, and a change of the cores followed."""

from fusion.team_size import PROBE_EVERY, TeamSizes


def run(sizes: TeamSizes, steps: int, step_s: dict[int, float], rows: int = 1) -> list[int]:
    """`steps` steps whose time depends on the team size as `step_s` says -> sizes used."""
    used = []
    for _ in range(steps):
        size = sizes.next(rows)
        sizes.took(rows, size, step_s[size])
        used.append(size)
    return used


def test_both_sizes_are_tried_then_the_faster_is_kept_and_the_other_probed():
    sizes = TeamSizes(2)
    used = run(sizes, 4 * PROBE_EVERY, {2: 0.040, 1: 0.055})  # idle cores: two is faster
    assert used[:2] == [2, 1]
    assert used.count(1) == 1 + 4  # the first try, then one probe every PROBE_EVERY steps
    assert all(used[i] == 1 for i in range(PROBE_EVERY - 1, len(used), PROBE_EVERY))


def test_a_busy_core_moves_the_team_to_one_thread_and_back_when_it_is_free():
    sizes = TeamSizes(2)
    run(sizes, PROBE_EVERY, {2: 0.040, 1: 0.055})
    busy = run(sizes, 2 * PROBE_EVERY, {2: 0.140, 1: 0.057})  # a core taken: two collapses
    assert busy[-PROBE_EVERY // 2 :].count(1) >= PROBE_EVERY // 2 - 1
    free = run(sizes, 3 * PROBE_EVERY, {2: 0.040, 1: 0.055})  # the core is back
    assert free[-PROBE_EVERY // 2 :].count(2) >= PROBE_EVERY // 2 - 1


def test_each_batch_size_is_judged_on_its_own_steps():
    sizes = TeamSizes(2)
    run(sizes, PROBE_EVERY, {2: 0.040, 1: 0.055}, rows=1)
    assert sizes.next(4) == 2  # four rows: tried anew with each size
    sizes.took(4, 2, 0.090)
    assert sizes.next(4) == 1
    sizes.took(4, 1, 0.120)
    assert sizes.next(4) == 2 and sizes.next(1) == 2


def test_a_team_of_one_stays_one():
    sizes = TeamSizes(1)
    assert run(sizes, 3, {1: 0.05}) == [1, 1, 1]
