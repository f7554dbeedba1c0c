"""The attempt state machine: every state a provider attempt can be in, the moves between them, and the named
sets that the rest of the code asks. Rule: everything that decides what a state means lives in this file;
nothing outside it spells a state's name.

Theory of operation. An attempt is one submit of one request (one fingerprint) to one provider. Its record is
written before anything is sent and after every step, so a crash leaves a record that says what is known:

    INTENT           written before the submit POST leaves; it is also the budget reservation
    ACCEPTED         the provider answered with a task id: from here on the task is polled, never submitted again
    UNKNOWN          the POST may have reached the provider and no task id came back: a task may exist and may be
                     billed. Where the provider lists its tasks, the listing settles it (found: ACCEPTED; provably
                     never created: REJECTED, ledger/settle.py); otherwise a person decides
                     (``seedance-pipeline tasks adopt|retry|abandon``)
    REJECTED         the provider refused the submit, or was never reached: nothing exists, nothing is billed
    BLOCKED          a budget stopped it before anything was sent
    SUCCEEDED        the output is stored (billed)
    FAILED           the task ended without a clip (free wherever the provider documents it; assumed elsewhere)
    DOWNLOAD_FAILED  the task succeeded (billed) but its output is not stored yet: collected again later
    LOST             the provider accepted the task and no longer knows it (forgotten after it ended): most likely
                     finished and billed, output unknown; counted as charged and never resubmitted automatically
                     (the next run makes the clip again as a new, budget-checked attempt)
    REUSED           no request at all: a stored clip made from the same fingerprint was used (born in this state)
    ABANDONED        a person closed it: an attempt whose acceptance was unknown, or a task cancelled at the provider

An attempt taken over by another process (after a crash) keeps its state; only its owner and run change.
"""

from __future__ import annotations

from enum import StrEnum


class AttemptState(StrEnum):
    INTENT = "intent"
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"
    REJECTED = "rejected"
    BLOCKED = "blocked"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DOWNLOAD_FAILED = "download_failed"
    REUSED = "reused"
    ABANDONED = "abandoned"
    LOST = "lost"


S = AttemptState

# Where a new record may start.
INITIAL = frozenset({S.INTENT, S.REUSED})

# state -> the states it may move to. A collected task (ACCEPTED, DOWNLOAD_FAILED, or SUCCEEDED whose clip was
# never stored whole) is polled again and ends like any accepted task; one still running stays ACCEPTED.
_AFTER_ACCEPTANCE = frozenset({S.ACCEPTED, S.SUCCEEDED, S.FAILED, S.DOWNLOAD_FAILED, S.LOST})
TRANSITIONS: dict[AttemptState, frozenset[AttemptState]] = {
    S.INTENT: frozenset({S.ACCEPTED, S.UNKNOWN, S.REJECTED, S.BLOCKED, S.ABANDONED}),
    S.ACCEPTED: _AFTER_ACCEPTANCE | {S.ABANDONED},  # abandoned: cancelled at the provider by a person
    S.DOWNLOAD_FAILED: _AFTER_ACCEPTANCE,
    S.SUCCEEDED: _AFTER_ACCEPTANCE,
    S.UNKNOWN: frozenset({S.ACCEPTED, S.REJECTED, S.ABANDONED}),  # accepted/rejected: settled by a task list
    S.REJECTED: frozenset(),
    S.BLOCKED: frozenset(),
    S.FAILED: frozenset(),
    S.REUSED: frozenset(),
    S.ABANDONED: frozenset(),
    S.LOST: frozenset(),
}

# -- the named sets --------------------------------------------------------------------------------------------

# Needs attention: listed in tasks/open/, by `tasks list` and the pending-tasks sensor.
OPEN = frozenset({S.INTENT, S.ACCEPTED, S.UNKNOWN, S.DOWNLOAD_FAILED})
# A task the provider has: collect it by polling and downloading, never by submitting again.
COLLECTABLE = frozenset({S.ACCEPTED, S.DOWNLOAD_FAILED})
# Acceptance unknown once no live process works on it: never resubmitted automatically; a person decides.
NEEDS_DECISION = frozenset({S.INTENT, S.UNKNOWN})
# Waits for a person even while its owner lives (the owner has already given up on it).
AWAITING_PERSON = frozenset({S.UNKNOWN})
# Written, nothing sent yet: a run's budget may not have decided on it (it decides one intent at a time).
UNDECIDED = frozenset({S.INTENT})
# May still be billed: a budget counts its estimate.
IN_FLIGHT = frozenset({S.INTENT, S.ACCEPTED, S.UNKNOWN})
# Billed, or most likely billed: a budget and the cost report count its charge (reported, else estimated).
BILLED = frozenset({S.SUCCEEDED, S.DOWNLOAD_FAILED, S.LOST})
# Never reached the provider: its budget reservation is released.
NEVER_SENT = frozenset({S.REJECTED, S.BLOCKED})
# A clip is stored for the pair.
STORED = frozenset({S.SUCCEEDED, S.REUSED})
# Its output may be reused for the same fingerprint.
REUSABLE = frozenset({S.SUCCEEDED})
# Costs nothing.
FREE = frozenset(AttemptState) - IN_FLIGHT - BILLED


class IllegalTransition(ValueError):
    def __init__(self, old: AttemptState | None, new: AttemptState):
        where = f"from {old}" if old is not None else "as a new record"
        super().__init__(f"an attempt cannot move {where} to {new}")


def check_move(old: AttemptState | None, new: AttemptState) -> None:
    """Raise ``IllegalTransition`` unless an attempt in ``old`` (None: a new record) may move to ``new``."""
    allowed = INITIAL if old is None else TRANSITIONS[old]
    if new not in allowed:
        raise IllegalTransition(old, new)
