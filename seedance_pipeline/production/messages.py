"""What the production thread sends the Dagster thread of the clips step, one message at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import dagster as dg

LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class Log:
    """A line for the run's log (Dagster's log manager belongs to the step's thread)."""

    level: LogLevel
    text: str


@dataclass(frozen=True)
class Stored:
    """One clip stored (or reused): its materialization and check evaluations, for the step to yield."""

    events: list[dg.AssetMaterialization | dg.AssetCheckEvaluation]


@dataclass(frozen=True)
class Failed:
    """One clip that could not be made, with the reason and any event to record on its partition (a lost task's
    observation); the other clips of the run go on."""

    message: str
    events: list[dg.AssetObservation] = field(default_factory=list)


Message = Log | Stored | Failed
