"""The local executor: results in job order, each handed over as it arrives, even when a later
job fails."""

import pytest

from mgral_pipelines.execution import Executor, run_tasks


def _square_or_fail(x: int) -> int:
    if x < 0:
        raise ValueError(f"job {x} failed")
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_results_arrive_in_job_order_and_each_is_handed_over(workers):
    arrived = {}
    assert run_tasks(_square_or_fail, [3, 1, 2], Executor(workers=workers), desc="square",
                     on_result=arrived.__setitem__) == [9, 1, 4]
    assert arrived == {0: 9, 1: 1, 2: 4}


def test_a_failing_job_fails_the_call_after_the_finished_ones_were_handed_over():
    arrived = {}
    with pytest.raises(ValueError, match="job -1 failed"):
        run_tasks(_square_or_fail, [1, 2, -1, 4], Executor(), desc="square",
                  on_result=arrived.__setitem__)
    assert arrived == {0: 1, 1: 4}  # and job 3 never started
