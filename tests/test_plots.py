"""The run's plots as a reader needs them: scaled to the data, labelled ticks on every
axis, legends beside the data rather than over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgetwin.emulator.engine import Results
from edgetwin.emulator.output import plots

from .emulator_helpers import run, small_scenario

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(scope="module")
def sync_run() -> Results:
    return run(small_scenario(orchestration__deadline_s=3600))


@pytest.fixture(scope="module")
def async_run() -> Results:
    return run(small_scenario(orchestration__mode="async", orchestration__clients_per_round=1,
                              orchestration__async={"buffer_size": 2, "concurrency": 8,
                                                    "max_staleness": 0},
                              stop__rounds=8))


@pytest.fixture
def ax() -> Iterator[Any]:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    yield ax
    plt.close(fig)


@pytest.mark.parametrize("lo", [0.013, 1.0, 1.7, 3.3, 9.9, 11.0, 47.0, 61.0, 990.0])
@pytest.mark.parametrize("ratio", [4.0, 5.5, 9.0, 30.0, 99.0, 150.0, 3e3, 2e4, 1e6])
def test_a_log_axis_has_two_labelled_ticks_however_narrow(lo: float, ratio: float) -> None:
    hi = lo * ratio
    subs = plots.log_tick_subs(lo, hi)
    ticks = [s * 10.0 ** k for k in range(-3, 10) for s in subs]
    inside = [t for t in ticks if lo <= t <= hi]
    assert 2 <= len(inside) <= 15, (lo, hi, inside)


def test_a_range_under_a_factor_of_4_stays_linear() -> None:
    assert plots.log_tick_subs(61.0, 95.0) == ()
    assert plots.log_tick_subs(0.0, 95.0) == ()


def test_time_axis_unit_follows_the_span() -> None:
    assert plots.time_unit(43.0) == (1.0, "s")
    assert plots.time_unit(155 * 60.0) == (60.0, "min")
    assert plots.time_unit(48 * 3600.0) == (3600.0, "h")


def test_sync_rounds_are_not_squashed_by_a_far_deadline(sync_run: Results, ax: Any) -> None:
    plots._round_duration(ax, sync_run)
    longest = max(r.end_s - r.start_s for r in sync_run.rounds)
    assert longest < ax.get_ylim()[1] < 2 * longest < 3600
    assert any("deadline 3,600 s" in t.get_text() for t in ax.texts)


def test_async_is_scaled_to_the_time_between_aggregations(async_run: Results,
                                                         ax: Any) -> None:
    plots._round_duration(ax, async_run)
    gaps = [r.end_s - r.start_s for r in async_run.rounds]
    assert "between aggregations" in ax.get_ylabel()
    assert max(gaps) < ax.get_ylim()[1] <= 1.2 * max(gaps)
    assert not ax.get_lines()  # no deadline line: it bounds a session, not an aggregation


def test_legends_sit_beside_the_data(sync_run: Results, async_run: Results) -> None:
    for r in (sync_run, async_run):
        for draw in (plots._timeline, plots._session_time_cdf, plots._failures):
            fig, ax = plt.subplots(figsize=(8, 4))
            draw(ax, r)
            fig.canvas.draw()
            legend = ax.get_legend()
            if legend is not None:
                box = legend.get_window_extent()
                assert box.x0 >= ax.get_window_extent().x1, draw.__name__
            plt.close(fig)


def test_session_time_axis_has_labelled_ticks(sync_run: Results, ax: Any) -> None:
    plots._session_time_cdf(ax, sync_run)
    ax.figure.canvas.draw()
    lo, hi = ax.get_xlim()
    labelled = [t for t in ax.xaxis.get_major_ticks()
                if t.label1.get_text() and lo <= t.get_loc() <= hi]
    assert len(labelled) >= 2


def test_every_plot_is_written_with_stale_sessions(async_run: Results,
                                                  tmp_path: Path) -> None:
    statuses = {int(s) for s in async_run.sessions["status"]}
    assert plots.STATUSES.index("stale") in statuses  # the case the colours once lacked
    assert plots.write_plots(async_run, tmp_path) == list(plots.PLOTS)
    assert all((tmp_path / name).stat().st_size > 0 for name in plots.PLOTS)


def test_an_empty_failures_panel_says_so(ax: Any) -> None:
    # always online, a full battery and a deadline nothing misses: no session ends early,
    # whatever the seed draws
    r = run(small_scenario(stop__rounds=1, availability={"mean_session_s": None,
                                                         "online_fraction": 1.0},
                           battery={"initial_pct": 100}, orchestration__deadline_s=100_000))
    assert len(r.sessions["status"]) > 0 and all(s == 0 for s in r.sessions["status"])
    plots._failures(ax, r)
    assert any("ended early" in t.get_text() for t in ax.texts)
    assert not ax.patches
