"""The attempt state machine (ledger/states.py): every transition walked, the named sets coherent, the journal's
outcomes inside the table, and no state spelled as a string anywhere else in the package."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from seedance_pipeline.core.errors import (
    AcceptanceUnknown,
    DownloadFailed,
    OverBudget,
    PollTimeout,
    ProviderError,
    ProviderUnavailable,
    SubmitRejected,
    TaskFailed,
    TaskLost,
)
from seedance_pipeline.ledger import states
from seedance_pipeline.ledger.journal import outcome_of
from seedance_pipeline.ledger.records import AttemptRecord
from seedance_pipeline.ledger.states import AttemptState as S
from seedance_pipeline.ledger.states import IllegalTransition
from seedance_pipeline.ledger.store import TaskStore

PACKAGE = Path(__file__).resolve().parent.parent / "seedance_pipeline"


def _record(state: S) -> AttemptRecord:
    return AttemptRecord(
        attempt_id="2026-12-01T000000Z-0123456789",
        fingerprint="f" * 64,
        image="cat",
        prompt="p",
        provider="novita",
        state=state,
        request={},
        estimated_cost_usd=0.1,
        created_at=0.0,
        updated_at=0.0,
    )


@pytest.mark.parametrize(("old", "new"), list(itertools.product(S, S)), ids=lambda s: str(s))
def test_every_move_is_allowed_exactly_when_the_table_says(old, new):
    record = _record(old)
    if new in states.TRANSITIONS[old]:
        assert record.moved(new, task_id="t-1").state is new
    else:
        with pytest.raises(IllegalTransition, match=f"from {old} to {new}"):
            record.moved(new)


def test_every_state_has_a_row_and_terminal_states_need_no_attention():
    assert set(states.TRANSITIONS) == set(S)
    terminal = {s for s, after in states.TRANSITIONS.items() if not after}
    assert terminal == {S.REJECTED, S.BLOCKED, S.FAILED, S.REUSED, S.ABANDONED, S.LOST}
    assert not terminal & states.OPEN


def test_a_new_record_starts_as_an_intent_or_a_reuse_only(tmp_path):
    from seedance_pipeline.clip.prepare import build_request, prepare
    from seedance_pipeline.providers import get_adapter
    from seedance_pipeline.storage.resource import SeedanceStorage
    from seedance_pipeline_tests.conftest import png, put

    storage = SeedanceStorage(url=str(tmp_path))
    ref = put(storage, "images/cat.png", png())
    prepared = prepare(get_adapter("novita"), build_request(prompt="a cat", image=ref))
    store = TaskStore(storage)
    for state in S:
        kw = dict(image="cat", prompt="p", run_id=None, simulated=True, state=state)
        if state in states.INITIAL:
            assert store.create(prepared, **kw).state is state
        else:
            with pytest.raises(IllegalTransition, match="as a new record"):
                store.create(prepared, **kw)
    assert {r.state for r in store.for_fingerprint(prepared.fingerprint)} == set(states.INITIAL)


def test_a_task_the_provider_forgot_is_lost_and_counted_as_billed():
    assert outcome_of(TaskLost("runpod", "HTTP 404", task_id="t"), accepted=True) is S.LOST
    assert S.LOST in states.BILLED and S.LOST not in states.OPEN | states.FREE


def test_the_named_sets_agree_with_each_other():
    assert states.COLLECTABLE | states.NEEDS_DECISION == states.OPEN
    assert not states.COLLECTABLE & states.NEEDS_DECISION
    assert states.AWAITING_PERSON <= states.NEEDS_DECISION
    assert states.IN_FLIGHT <= states.OPEN and not states.IN_FLIGHT & states.BILLED
    assert set(S) - states.IN_FLIGHT - states.BILLED == states.FREE
    assert states.NEVER_SENT <= states.FREE and states.REUSABLE <= states.STORED
    assert states.TRANSITIONS[S.INTENT] >= states.NEVER_SENT  # only an intent can end without being sent


ERRORS = [
    OverBudget("over"),
    SubmitRejected("novita", "bad request", status_code=400),
    ProviderUnavailable("novita", "503s", status_code=503),
    AcceptanceUnknown("novita", "dropped"),
    TaskFailed("novita", "moderation", task_id="t", state="failed"),
    DownloadFailed("novita", "expired", task_id="t"),
    TaskLost("runpod", "HTTP 404", task_id="t"),
    PollTimeout("novita", "too long"),
    ProviderError("novita", "something else"),
    OSError("disk"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("before", [S.INTENT, S.ACCEPTED, S.DOWNLOAD_FAILED, S.SUCCEEDED], ids=str)
def test_every_outcome_the_journal_records_is_a_move_the_table_allows(error, before):
    outcome = outcome_of(error, accepted=before is not S.INTENT)
    assert outcome in states.TRANSITIONS[before]


def test_no_module_outside_the_state_machine_spells_a_state_name():
    """Provider modules and the simulator speak the providers' own words ("failed", "completed"); everywhere
    else an attempt's state is named through ledger/states.py."""
    names = {s.value for s in S}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        # review/records.py spells the review states (pending, approved, rejected): a vocabulary of its own
        # that shares one word with the attempt states, kept in that one table as the attempt states are here.
        if rel in ("ledger/states.py", "review/records.py") or rel.startswith(("simulator/", "providers/")):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_fstrings = {id(c) for f in ast.walk(tree) if isinstance(f, ast.JoinedStr) for c in ast.walk(f)}
        for node in ast.walk(tree):
            if (
                id(node) not in in_fstrings
                and isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in names
            ):
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)
