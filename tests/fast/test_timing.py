"""imgsearch_helpers.evaluation.timing: warm-up calls untimed, each timed call kept, summed up as asked."""
import time

import pytest

from imgsearch_helpers.evaluation.timing import Timing, time_each, time_interleaved, time_runs


def test_warm_up_calls_are_not_timed_and_the_last_result_is_kept():
    calls = []

    def work():
        calls.append(len(calls))
        time.sleep(0.05 if len(calls) == 1 else 0.001)  # the first call is slow, as a trace is
        return len(calls)

    timing = time_runs(work, runs=3, warmup=1)
    assert len(calls) == 4 and len(timing.seconds) == 3 and timing.result == 4
    assert timing.best < 0.04 and max(timing.seconds) < 0.04


def test_summaries_of_known_seconds():
    timing = Timing((0.3, 0.1, 0.2, 0.4))
    assert timing.best == 0.1 and timing.total == pytest.approx(1.0)
    assert timing.median == pytest.approx(0.25) and timing.mean == pytest.approx(0.25)
    assert timing.percentile(100) == 0.4 and timing.percentile_ms(50) == pytest.approx(250)


def test_each_item_is_timed_once_in_order():
    timing = time_each(lambda seconds: time.sleep(seconds) or seconds, [0.001, 0.03, 0.001])
    assert timing.result == [0.001, 0.03, 0.001]
    assert timing.seconds[1] == max(timing.seconds) >= 0.03


def test_interleaved_works_take_turns():
    order = []
    timings = time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, runs=2, warmup=1)
    assert order == ["a", "b", "a", "b", "a", "b"]  # warm-ups, then a, b, a, b
    assert {name: len(timing.seconds) for name, timing in timings.items()} == {"a": 2, "b": 2}
