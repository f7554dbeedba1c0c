"""The fault campaign at CI size (the full one: ``make reliability``): seeded, so a failure reproduces.

30 clips on local storage with every provider fault kind (and a 4 s outage), then 12 on S3 through a proxy that
fails writes in bursts. Each asserts the invariants: every requested clip is either stored and
passing both checks or failed with a reason; no clip fingerprint paid twice except after the
provider itself failed the task; no orphaned provider task; nothing half-written; no key in storage.
"""

from __future__ import annotations

import pytest

from seedance_pipeline_tests.campaign import CampaignConfig, format_table, run_campaign, violations

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def check_invariants(result, min_stored_share: float) -> None:
    table = format_table(result)
    print("\n" + table)
    assert result.requested == result.config.clips  # CI sizes are whole images x prompts
    assert violations(result, min_stored_share) == [], table


def test_campaign_local(tmp_path):
    cfg = CampaignConfig(clips=30, seed=3, storage="local", outage_s=4.0, workdir=str(tmp_path))
    result = run_campaign(cfg)
    check_invariants(result, 0.7)
    applied = {k for k, n in result.faults_applied.items() if n}
    assert "down" in applied and len(applied) >= 10, applied  # seeded: the same kinds fire on every run


def test_campaign_s3_write_errors(tmp_path):
    # A burst (6 failed writes) outlasts the S3 client's retries of the write it starts on, and a write that fails
    # fails its clip for this run ("storage error ... run again"): 5 of 9 rounds that had a clip to collect failed
    # that way (4 campaigns), so 5 reruns left an accepted clip uncollected in about 1 campaign in 20 (0.55^5).
    # Recovery here is rerunning until stable, as a user would; 10 rounds bound that at about 0.25 % (0.55^10).
    cfg = CampaignConfig(
        clips=12,
        seed=5,
        storage="s3",
        outage_s=3.0,
        s3_burst_probability=0.05,
        max_rounds=10,
        workdir=str(tmp_path),
    )
    result = run_campaign(cfg)
    check_invariants(result, 0.6)
    assert result.s3_counts["failed_writes"] > 0  # S3 did fail writes, and nothing was lost to it


def test_a_marker_whose_record_write_failed_does_not_block_the_clip(storage):
    """Found by the S3 campaign: ``create`` writes the fingerprint marker, then the record; when the
    record's write fails nothing was sent, and the dangling marker must not fail every later run."""
    from seedance_pipeline.ledger.store import TaskStore

    store = TaskStore(storage)
    storage.write_bytes(store._marker_path("f" * 64, "2026-01-01T000000Z-0123456789"), b"")
    assert store.for_fingerprint("f" * 64) == []
