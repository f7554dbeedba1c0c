"""How a batch of events reaching ``store_event_batch`` is split: into runs of one asset's events of one kind.

Dagster hands an event log a run's planned events in batches (``DAGSTER_EVENT_BATCH_SIZE``, set by
``ask_for_batches``), sorted by asset key: for a run that includes an asset's checks, the asset's planned
materializations are followed by its planned checks, and a batch holding both is mixed. Stored as a whole only
when every event is of one kind, such a batch went an event at a time: at N = 1,500 partitions with checks, the 500
planned events of the second batch (M20). Each run of consecutive events of one kind, one asset and one run is
written at once where the event log can; the rest as Dagster stores them. The order of the events is kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import groupby

from dagster import DagsterEventType

from seedance_pipeline.dagster_internals import EventLogEntry

# What the project's event logs write at once (dagster-postgres batches the first two itself).
BATCHED = (
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_OBSERVATION,
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
)


def _kind(event: EventLogEntry) -> tuple:
    dagster_event = event.dagster_event
    if dagster_event is None:
        return (None, None, event.run_id)
    return (dagster_event.event_type, dagster_event.asset_key, event.run_id)


def runs_of_one_kind(events: Sequence[EventLogEntry]) -> Iterator[tuple[bool, list[EventLogEntry]]]:
    """(whether to write at once, events) for each run of consecutive events of one type, asset and run, in order:
    at once when there are two or more of a ``BATCHED`` type with an asset key."""
    for (event_type, asset_key, _), group in groupby(events, key=_kind):
        run = list(group)
        yield (len(run) > 1 and event_type in BATCHED and asset_key is not None), run
