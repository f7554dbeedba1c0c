"""The lifecycle campaign at CI size (the full month: ``make lifecycle``): seeded, so a failure reproduces.

Four days over three images and three providers (one throttling, one forgetting tasks), a run killed on day 3;
the invariants of ``lifecycle.check`` after every day, and every pair of the final catalog stored at the end."""

from __future__ import annotations

import pytest

from seedance_pipeline_tests.lifecycle import LifecycleConfig, format_table, run_lifecycle

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def test_a_small_month(tmp_path):
    cfg = LifecycleConfig(
        days=4,
        seed=2,
        images=3,
        providers=("runpod", "wavespeed", "novita"),
        submits_per_window=1,
        max_running=1,
        workdir=str(tmp_path),
    )
    result = run_lifecycle(cfg)
    table = format_table(result)
    print("\n" + table)
    assert result.violations == [], table
    assert result.missing_at_end == [], table
    assert not {"intent", "unknown"} & set(result.outcomes), table  # the user settled every unknown acceptance
    assert result.kills == 1 and result.orphans_left_by_kills >= 1, table
    assert result.outcomes["lost"] >= 1 and result.lost_usd > 0, table  # the forgetful provider did forget
    assert result.rate_limited > 0, table  # the throttled provider did throttle
    assert sum(result.events.values()) >= 4, table
