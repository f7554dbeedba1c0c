"""``seedance-pipeline review``: list the takes waiting for a person, approve them, reject them with a note.

A decision is stored in ``reviews/<prompt>/<image>.json`` with the take's fingerprint and number, the reviewer,
the time and the note (``review/records.py``). Nothing here sends a request or pays for anything.
"""

from __future__ import annotations

import json
import sys

import click

from seedance_pipeline.cli.common import EXIT_REJECTED, json_option, open_storage, storage_option
from seedance_pipeline.cli.progress import Progress
from seedance_pipeline.core import settings
from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.core.keys import key_problem
from seedance_pipeline.planning.retakes import after_rejection
from seedance_pipeline.review.gallery import build_gallery
from seedance_pipeline.review.records import APPROVED, PENDING, REJECTED, REVIEW_STATES, PairReviews
from seedance_pipeline.review.store import ReviewStore
from seedance_pipeline.review.takes import Take, pair_takes, prompt_takes
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage


@click.group()
def review() -> None:
    """Review the takes: list them, approve the good ones, reject the others with a note."""


def parse_clip(clip: str) -> tuple[str, str]:
    """``<image>|<prompt>`` (the partition key) or ``<prompt>/<image>`` -> (image, prompt)."""
    if "|" in clip:
        image, _, prompt = clip.partition("|")
    elif "/" in clip:
        prompt, _, image = clip.partition("/")
    else:
        raise InvalidRequest("CLIP", clip, "name the clip as <image>|<prompt> or <prompt>/<image>")
    for what, key in (("image", image), ("prompt", prompt)):
        problem = key_problem(key)
        if problem:
            raise InvalidRequest("CLIP", clip, f"the {what} key {key!r} is not a key: {problem}")
    return image, prompt


def _next(take: Take, reviews: PairReviews) -> str:
    """What happens to the pair next, for a rejected take (``planning/retakes.py``)."""
    step = after_rejection(reviews.latest(take.fingerprint), settings.MAX_TAKES.read() or 1)
    return f"{step[0]}: {step[1]}" if step else ""


def _row(take: Take, reviews: PairReviews) -> dict:
    decision = reviews.latest(take.fingerprint)
    side = take.sidecar
    return {
        "clip": take.clip,
        "image": take.image,
        "prompt": take.prompt,
        "take": take.number,
        "fingerprint": take.fingerprint,
        "state": decision.state if decision else PENDING,
        "provider": side.get("provider"),
        "seed": side.get("seed"),
        "cost_usd": take.cost_usd,
        "checks_passed": take.checks_passed,
        "reviewer": decision.reviewer if decision else None,
        "at": decision.at.isoformat() if decision else None,
        "note": decision.note if decision else "",
        "next": _next(take, reviews),
        "path": take.path,
    }


def _prompts(storage: SeedanceStorage, prompt: str | None) -> list[str]:
    if prompt:
        return [prompt]
    folder = storage.path(layout.CLIPS)
    try:
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in storage.fs.ls(folder, detail=False))
    except FileNotFoundError:
        return []


@review.command("list")
@storage_option
@click.option("--prompt", default=None, help="Only this prompt's clips.")
@click.option("--state", type=click.Choice(REVIEW_STATES), default=None, help="Only takes in this state.")
@json_option
def review_list(storage_url: str | None, prompt: str | None, state: str | None, as_json: bool) -> None:
    """Each pair's current take with its review state (a review file that breaks a rule is named on stderr)."""
    storage = open_storage(storage_url)
    store = ReviewStore(storage)
    rows, problems = [], []
    for name in _prompts(storage, prompt):
        takes = prompt_takes(storage, name)
        reviews, bad = store.load_prompt(name, list(takes))
        problems += bad
        for image, pair in takes.items():
            if image in reviews:
                rows += [_row(t, reviews[image]) for t in pair if t.current]
    rows = [r for r in rows if state is None or r["state"] == state]
    if as_json:
        click.echo(json.dumps(rows, indent=1, sort_keys=True))
    elif not rows:
        click.echo("no takes" + (f" in state {state}" if state else "") + (f" of prompt {prompt}" if prompt else ""))
    else:
        click.echo(f"{'clip':<34} {'take':>4} {'state':<9} {'provider':<10} {'seed':>11} {'$':>8} checks  note")
        for r in rows:
            click.echo(
                f"{r['clip']:<34} {r['take']:>4} {r['state']:<9} {r['provider'] or '-':<10} "
                f"{r['seed'] if r['seed'] is not None else '-':>11} {r['cost_usd']:>8.4f} "
                f"{'ok' if r['checks_passed'] else 'FAILED':<7} {r['note']}" + (f"  ({r['next']})" if r["next"] else "")
            )
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        sys.exit(EXIT_REJECTED)


def _decide(storage_url: str | None, clip: str, state: str, note: str, retake: bool, as_json: bool) -> None:
    image, prompt = parse_clip(clip)
    storage = open_storage(storage_url)
    takes = [t for t in pair_takes(storage, prompt, image) if t.current]
    if not takes:
        raise InvalidRequest("CLIP", clip, f"no stored clip {layout.clip(prompt, image)} to review")
    take = takes[0]
    store = ReviewStore(storage)
    decision = store.decide(take, state, note, retake=retake)
    reviews = store.load(prompt, image)
    observed = {
        "review": decision.state,
        "take": take.number,
        "fingerprint": take.fingerprint,
        "reviewer": decision.reviewer,
        "note": decision.note,
        "next": _next(take, reviews) or "-",
    }
    selected = _refresh_review(storage, image, prompt, observed)
    if as_json:
        click.echo(json.dumps(_row(take, reviews), indent=1, sort_keys=True))
        return
    click.echo(
        f"{decision.state} take {take.number} of {take.clip} (fingerprint {take.fingerprint[:12]}) as "
        f"{decision.reviewer}"
    )
    click.echo(selected)
    if not take.checks_passed:
        click.echo(f"note: take {take.number} of {take.clip} did not pass every check", err=True)


def _refresh_review(storage: SeedanceStorage, image: str, prompt: str, observed: dict) -> str:
    """Record the decision on the clip partition (an observation: the UI shows it there), materialize the pair's
    ``selects`` partition (a copy within storage, nothing is paid) and the prompt's ``galleries`` partition: what
    the pair's select holds now."""
    import dagster as dg

    from seedance_pipeline.cli.run_report import RunReport
    from seedance_pipeline.cli.runner import Executor, dagster_instance, refresh_galleries, refresh_selects
    from seedance_pipeline.definitions import build_definitions
    from seedance_pipeline.lineage.names import CLIPS_KEY
    from seedance_pipeline.lineage.partitions import clip_partition
    from seedance_pipeline.providers.resource import SeedanceProviders
    from seedance_pipeline.review.selects import read_row

    instance = dagster_instance()
    instance.report_runless_asset_event(
        dg.AssetObservation(CLIPS_KEY, partition=clip_partition(image, prompt), metadata=observed)
    )
    report = RunReport()
    execute = Executor(instance, build_definitions(storage, SeedanceProviders.from_env()), report, "CRITICAL")
    refresh_selects(execute, [(image, prompt)])
    refresh_galleries(execute, [prompt], {prompt})
    if report.failures:
        raise click.ClickException("selects: " + "; ".join(report.failures))
    row = read_row(storage, image, prompt)
    if row is None:
        return f"selects: {image}|{prompt} has no approved take"
    return f"selects: take {row['take']} of {image}|{prompt} at {storage.ref(storage.path(row['path']))}"


@review.command("approve")
@storage_option
@click.argument("clip")
@click.option("--note", default="", help="Why, for whoever reads the review later.")
@json_option
def review_approve(storage_url: str | None, clip: str, note: str, as_json: bool) -> None:
    """Approve CLIP's current take (<image>|<prompt> or <prompt>/<image>)."""
    _decide(storage_url, clip, APPROVED, note, True, as_json)


@review.command("reject")
@storage_option
@click.argument("clip")
@click.option("--note", required=True, help="What is wrong with the take.")
@click.option(
    "--no-retake", is_flag=True, help="Recorded with the decision: this pair is not to be made again automatically."
)
@json_option
def review_reject(storage_url: str | None, clip: str, note: str, no_retake: bool, as_json: bool) -> None:
    """Reject CLIP's current take (<image>|<prompt> or <prompt>/<image>), saying why."""
    _decide(storage_url, clip, REJECTED, note, not no_retake, as_json)


@click.command()
@storage_option
@click.option("--prompt", default=None, help="Only this prompt's page.")
@json_option
def gallery(storage_url: str | None, prompt: str | None, as_json: bool) -> None:
    """Write each prompt's review contact sheet (galleries/<prompt>.html) and print where it is."""
    storage = open_storage(storage_url)
    pages = [build_gallery(storage, name) for name in Progress("gallery").each("pages", _prompts(storage, prompt))]
    if as_json:
        click.echo(json.dumps([vars(p) for p in pages], indent=1, sort_keys=True))
        return
    if not pages:
        click.echo("no clips to show" + (f" for prompt {prompt}" if prompt else ""))
    for page in pages:
        click.echo(f"{page.prompt:<24} {page.takes:>5} clip(s)  {page.path}")
