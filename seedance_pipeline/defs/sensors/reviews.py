"""``review_sensor``: watches ``reviews/``. A decision written by ``review``, by hand or by another tool becomes
the retake it calls for (``planning/retakes.py``) and the ``selects`` and ``galleries`` partitions it changes, one
run per prompt each. Unchanged review files cost one listing per tick."""

import hashlib

import dagster as dg

from seedance_pipeline.defs.jobs import clips_job, galleries_job, selects_job
from seedance_pipeline.lineage.names import TRIGGER_TAG
from seedance_pipeline.lineage.partitions import IMAGES, PROMPTS, clip_range_tags, range_tags
from seedance_pipeline.planning.cover import span
from seedance_pipeline.planning.retakes import scan_retakes
from seedance_pipeline.review.selects import out_of_step
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage, file_stamp

SENSOR_INTERVAL_S = 30
TRIGGER = "review_sensor"


@dg.sensor(
    name=TRIGGER,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[clips_job, selects_job, galleries_job],
    description="Watches reviews/: a rejected take is made again with a new seed (at most SEEDANCE_MAX_TAKES takes "
    "per pair), and the selects and galleries of the pairs decided on are brought in step.",
)
def review_sensor(context: dg.SensorEvaluationContext, storage: SeedanceStorage):
    folder = storage.path(layout.REVIEWS)
    try:
        listing = storage.fs.find(folder, detail=True)
    except FileNotFoundError:
        listing = {}
    digest = hashlib.sha256(
        "\n".join(f"{path}\0{file_stamp(info)}" for path, info in sorted(listing.items())).encode()
    ).hexdigest()
    if digest == context.cursor:
        return dg.SkipReason(f"no review changed ({len(listing)} review file(s))")
    images = context.instance.get_dynamic_partitions(IMAGES)
    prompts = context.instance.get_dynamic_partitions(PROMPTS)
    known_i, known_p = set(images), set(prompts)
    reviewed = [pair for path in listing if (pair := layout.pair_of(path[len(folder) + 1 :])) is not None]
    scan = scan_retakes(storage, [(i, p) for i, p in reviewed if i in known_i and p in known_p])
    for problem in scan.problems:
        context.log.warning(f"review file left as it is: {problem}")
    for (image, prompt), why in sorted(scan.waiting.items()):
        context.log.info(f"{image}|{prompt} waits for a person: {why}")
    runs = []
    for prompt, chosen in _by_prompt(scan.retakes).items():
        runs.append(
            dg.RunRequest(
                run_key=f"retakes:{prompt}:{digest}",
                job_name=clips_job.name,
                run_config={"ops": {"clips": {"config": {"mode": "missing"}}}},
                tags={**clip_range_tags(list(span(images, chosen)), [prompt]), TRIGGER_TAG: TRIGGER},
            )
        )
    changed = [(i, p) for i, p in out_of_step(storage) if i in known_i and p in known_p]
    for prompt, chosen in _by_prompt(changed).items():
        runs.append(
            dg.RunRequest(
                run_key=f"selects:{prompt}:{digest}",
                job_name=selects_job.name,
                run_config={"ops": {"selects": {"config": {"only_changed": True}}}},
                tags={**clip_range_tags(list(span(images, chosen)), [prompt]), TRIGGER_TAG: TRIGGER},
            )
        )
    galleries = {p for _, p in changed}
    if galleries:
        runs.append(
            dg.RunRequest(
                run_key=f"galleries:{digest}",
                job_name=galleries_job.name,
                tags={**range_tags(*span(prompts, galleries)), TRIGGER_TAG: TRIGGER},
            )
        )
    return dg.SensorResult(run_requests=runs, cursor=digest)


def _by_prompt(pairs) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for image, prompt in pairs:
        out.setdefault(prompt, set()).add(image)
    return dict(sorted(out.items()))
