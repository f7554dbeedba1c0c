"""The partition ranges a run covers, chosen so that a run writes events only for the partitions it produces.

A Dagster run over many partitions names a range (``lineage/partitions.py`` ``range_tags``): a span of one
dimension in partition order, for clips a rectangle of images x prompts. Dagster writes a planned event for
every partition of the range before the run starts, so a range around a few wanted partitions costs as much as
the range. These functions pick the spans and rectangles that hold exactly the wanted ones where few ranges do,
and say how much more a range covers than it produces where they cannot.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby

# Runs go one after another, and a run's clips in parallel: so one run around the wanted partitions when it covers
# at most SLACK more than it produces (a planned event costs about 10 ms), else exact rectangles, at most MAX_RUNS.
SLACK = 64
MAX_RUNS = 4


def span(order: Sequence[str], chosen: Collection[str]) -> tuple[str, str]:
    """The shortest range of ``order`` holding every ``chosen`` key (new keys are added last, so new files are
    one short range at the end)."""
    at = [i for i, key in enumerate(order) if key in chosen]
    if not at:
        raise ValueError("span of no key")
    return order[at[0]], order[at[-1]]


@dataclass(frozen=True)
class Rectangle:
    images: tuple[str, str]  # first and last image of the range, in partition order
    prompts: tuple[str, str]
    size: int  # partitions in the rectangle
    pairs: tuple[tuple[str, str], ...]  # the wanted (image, prompt) pairs in it


def rectangles(
    pairs: Iterable[tuple[str, str]],
    images: Sequence[str],
    prompts: Sequence[str],
    *,
    slack: int = SLACK,
    max_runs: int = MAX_RUNS,
) -> list[Rectangle]:
    """Rectangles of partitions (``images`` x ``prompts``, both in partition order) that hold every pair and, when
    ``max_runs`` of them do, nothing else: per prompt the runs of consecutive wanted images, merged across
    neighbouring prompts that want the same runs. The one rectangle around them all where it holds at most
    ``slack`` partitions more than are wanted, or where more than ``max_runs`` rectangles would be needed."""
    image_at = {key: i for i, key in enumerate(images)}
    prompt_at = {key: i for i, key in enumerate(prompts)}
    by_prompt: dict[int, list[int]] = {}
    for image, prompt in pairs:
        by_prompt.setdefault(prompt_at[prompt], []).append(image_at[image])
    if not by_prompt:
        return []
    runs = {p: _runs(sorted(set(at))) for p, at in by_prompt.items()}
    # Neighbouring prompts (no prompt between them) with the same image runs share their rectangles.
    groups: list[list[int]] = []
    for p in sorted(runs):
        if groups and groups[-1][-1] == p - 1 and runs[groups[-1][-1]] == runs[p]:
            groups[-1].append(p)
        else:
            groups.append([p])
    exact = [(a, b, g[0], g[-1]) for g in groups for a, b in runs[g[0]]]
    first_i, last_i = min(r[0] for r in exact), max(r[1] for r in exact)
    around = (first_i, last_i, groups[0][0], groups[-1][-1])
    wanted = sum(len(set(at)) for at in by_prompt.values())
    if len(exact) > max_runs or _size(around) - wanted <= slack:
        exact = [around]
    held: dict[tuple[int, int, int, int], list[tuple[str, str]]] = {r: [] for r in exact}
    for p, at in sorted(by_prompt.items()):
        for i in sorted(set(at)):
            held[next(r for r in exact if r[0] <= i <= r[1] and r[2] <= p <= r[3])].append((images[i], prompts[p]))
    return [
        Rectangle((images[r[0]], images[r[1]]), (prompts[r[2]], prompts[r[3]]), _size(r), tuple(held[r])) for r in exact
    ]


def _size(rect: tuple[int, int, int, int]) -> int:
    a, b, p, q = rect
    return (b - a + 1) * (q - p + 1)


def _runs(at: list[int]) -> tuple[tuple[int, int], ...]:
    """Sorted indices as runs of consecutive ones: [1, 2, 3, 7] -> ((1, 3), (7, 7))."""
    return tuple(
        (group[0][1], group[-1][1])
        for group in (list(g) for _, g in groupby(enumerate(at), key=lambda pair: pair[1] - pair[0]))
    )
