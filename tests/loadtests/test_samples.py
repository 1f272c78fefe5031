"""Statistics of a run and the capacity-search verdicts, on hand-made samples."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtests.report import ReportError, read_locust_failures, read_locust_stats
from loadtests.samples import (
    BACKLOG,
    DELIVERED,
    ENVELOPES,
    GENERATOR,
    GENERATOR_CPU,
    GENERATOR_LAG,
    GeneratorGuard,
    Sample,
    SamplesError,
    envelope_counts,
    judge,
    percentile,
    read_samples,
    window_stats,
    write_samples,
)
from loadtests.search import SearchError, SearchPlan, StepResult, knee, steps_from_marks


def delivered(t: float, ms: float, users: int = 4) -> Sample:
    return Sample(t, "WS", DELIVERED, ms, 100, "", users)


def request(t: float, error: str = "", users: int = 4) -> Sample:
    return Sample(t, "WS", "send", 5.0, 0, error, users)


def sent(t: float, count: int) -> Sample:
    return Sample(t, ENVELOPES, "send", 0.0, count, "", 4)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 99) is None


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=200))
def test_percentiles_are_ordered_and_drawn_from_the_data(values: list[float]) -> None:
    p50, p95, p99 = (percentile(values, q) for q in (50, 95, 99))
    assert p50 is not None and p95 is not None and p99 is not None
    assert p50 <= p95 <= p99
    assert {p50, p95, p99} <= set(values)


def test_window_counts_envelopes_deliveries_and_errors_by_kind() -> None:
    samples = [
        request(0.5), request(1.0, "429 rate_limited"), sent(1.0, 3),
        delivered(1.1, 10.0), delivered(1.2, 30.0), Sample(1.3, "WS", BACKLOG, 900.0, 1, "", 4),
        request(5.0),  # outside the window
    ]
    stats = window_stats(samples, 0.0, 2.0, envelope_counts(samples))
    assert stats.requests == 2 and stats.failures == 1
    assert stats.envelopes_sent == 3 and stats.deliveries == 3
    assert stats.p99_ms == 30.0  # backlog deliveries stay out of the latency figures
    assert stats.errors == {"WS send: 429 rate_limited": 1}
    assert stats.envelopes_per_s == 1.5


def test_judge_names_the_broken_objective() -> None:
    ok = window_stats([request(0.1), delivered(0.2, 100.0)], 0, 1, [])
    assert judge(ok, 250, 0.001).passed
    slow = window_stats([request(0.1), delivered(0.2, 400.0)], 0, 1, [])
    assert "p99" in judge(slow, 250, 0.001).reason
    failing = window_stats([request(0.1, "500 internal"), delivered(0.2, 1.0)], 0, 1, [])
    assert "error rate" in judge(failing, 250, 0.001).reason
    silent = window_stats([request(0.1)], 0, 1, [])
    assert not judge(silent, 250, 0.001).passed


def test_knee_is_the_last_step_before_the_first_failure() -> None:
    plan = SearchPlan(start_users=2, step_users=2, max_users=6, step_duration=10, warmup=2)
    samples = []
    for k, latency in enumerate((50.0, 120.0, 600.0)):
        base = 10.0 * k
        samples += [request(base + 3 + i / 10, users=2 * (k + 1)) for i in range(20)]
        samples += [delivered(base + 3 + i / 10, latency, users=2 * (k + 1)) for i in range(20)]
    marks = [(0.0, 2), (10.0, 4), (20.0, 6)]
    results = steps_from_marks(plan, samples, marks, end=30.0)
    ok, failed = knee(results)
    assert ok is not None and failed is not None
    assert (ok.users, failed.users) == (4, 6)
    assert "p99" in failed.verdict.reason


def test_search_plan_validates_its_bounds() -> None:
    assert SearchPlan(1, 5, 21).steps == [1, 6, 11, 16, 21]
    for bad in (dict(start_users=0), dict(max_users=1, start_users=5),
                dict(warmup=30.0, step_duration=20.0), dict(max_error_rate=1.5)):
        with pytest.raises(SearchError):
            SearchPlan(**bad)


def test_samples_round_trip_and_malformed_files_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    rows = [request(1.0), delivered(2.0, 3.5), request(3.0, "timeout")]
    write_samples(path, rows)
    assert read_samples(path) == rows
    path.write_text("t,type\n")
    with pytest.raises(SamplesError) as info:
        read_samples(path)
    assert info.value.field == "header"
    path.write_text("t,type,name,ms,bytes,error,users,source\n1.0,WS,send,fast,0,,1,w0\n")
    with pytest.raises(SamplesError) as info:
        read_samples(path)
    assert info.value.field == "row 2"


def test_locust_csv_readers_reject_missing_columns(tmp_path: Path) -> None:
    stats = tmp_path / "locust_stats.csv"
    stats.write_text("Type,Name,Request Count\nGET,x,1\n")
    with pytest.raises(ReportError) as info:
        read_locust_stats(stats)
    assert "Failure Count" in info.value.field
    with pytest.raises(ReportError):
        read_locust_failures(tmp_path / "missing.csv")


def cpu(t: float, percent: float, source: str) -> Sample:
    return Sample(t, GENERATOR, GENERATOR_CPU, percent, 0, "", 4, source)


def lag(t: float, ms: float, source: str) -> Sample:
    return Sample(t, GENERATOR, GENERATOR_LAG, ms, 0, "", 4, source)


def test_window_names_the_hottest_generator_process() -> None:
    samples = [request(0.1), delivered(0.2, 10.0), cpu(0.5, 40.0, "w0"), cpu(0.6, 91.5, "w1"),
               cpu(0.7, 3.0, "master"), lag(0.8, 12.0, "w0"), cpu(5.0, 99.0, "w0")]
    stats = window_stats(samples, 0, 1, [])
    assert (stats.generator_cpu_max, stats.generator_cpu_source) == (91.5, "w1")
    assert stats.generator_lag_max_ms == 12.0
    assert stats.generator_processes == 3
    verdict = judge(stats, 250, 0.001)
    assert verdict.status == "inconclusive" and not verdict.passed
    assert verdict.reason.startswith("generator-bound: process w1 at 91.5 %")
    assert judge(stats, 250, 0.001, GeneratorGuard(max_cpu_percent=95)).passed


def test_a_late_event_loop_is_generator_bound_too() -> None:
    samples = [request(0.1), delivered(0.2, 10.0), cpu(0.5, 20.0, "local"),
               lag(0.6, 350.0, "local")]
    verdict = judge(window_stats(samples, 0, 1, []), 250, 0.001)
    assert verdict.status == "inconclusive"
    assert "event loop 350 ms late" in verdict.reason


@given(
    cpu_percent=st.floats(min_value=0, max_value=400),
    loop_lag=st.floats(min_value=0, max_value=5000),
    p99=st.floats(min_value=0.1, max_value=1000),
    errors=st.integers(min_value=0, max_value=3),
    limit=st.floats(min_value=1, max_value=150),
)
def test_a_generator_bound_window_is_never_a_pass(
    cpu_percent: float, loop_lag: float, p99: float, errors: int, limit: float
) -> None:
    samples = [request(0.1 + i / 100, "500 x" if i < errors else "") for i in range(50)]
    samples += [delivered(0.2, p99), cpu(0.3, cpu_percent, "w0"), lag(0.4, loop_lag, "w0")]
    stats = window_stats(samples, 0, 1, [])
    guard = GeneratorGuard(max_cpu_percent=limit, max_loop_lag_ms=100)
    verdict = judge(stats, 250, 0.5, guard)
    bound = round(cpu_percent, 1) > limit or round(loop_lag, 1) > 100
    assert (verdict.status == "inconclusive") == bound
    if bound:
        assert not verdict.passed


def _result(users: int, status: str) -> StepResult:
    from loadtests.samples import Verdict

    return StepResult(users, window_stats([], 0, 1, []), Verdict(status, status))


def test_knee_skips_a_generator_bound_step_that_was_repeated_with_more_workers() -> None:
    steps = [_result(2, "pass"), _result(4, "inconclusive"), _result(4, "pass"),
             _result(6, "fail")]
    ok, failed = knee(steps)
    assert ok is steps[2] and failed is steps[3]
    # not repeated: the search stopped there, and the knee is only the step below
    ok, failed = knee([_result(2, "pass"), _result(4, "inconclusive")])
    assert ok is not None and ok.users == 2
    assert failed is not None and failed.verdict.status == "inconclusive"
