"""Every path under the storage root, in one place (the README's "Storage layout" shows the same tree).

    images/<key>.<png|jpg|jpeg|webp|gif|bmp|tif|tiff>     source images (key = file name stem)
    prompts/<key>.yaml                                     prompt specs
    clips/<prompt>/<image>.mp4  + <image>.json             stored clips and their sidecars
    clips/<prompt>/<image>.last.png                        the clip's last frame, where the provider returns it
    clips/<prompt>/<image>.versions/<fingerprint>.mp4      earlier clips of the pair, kept when an edit replaces them
    reports/<YYYY-MM-DD>/cost_report.{parquet,md}          daily cost reports
    tasks/days/<YYYY-MM-DD>/<attempt>.json                 write-ahead record of every provider attempt
    tasks/open/<attempt>.json                              copy of each record that needs attention
    tasks/by-fingerprint/<fingerprint>/<attempt>           empty markers: the attempts of one request
    reviews/<prompt>/<image>.json                          the review decisions on each take of a pair
    selects/<prompt>/<image>.mp4 + <image>.json            the approved take of each pair, and its manifest row
    selects/<prompt>/manifest.csv                          every approved take of a prompt, for the tools downstream
    galleries/<prompt>.html + <prompt>/<image>-<fp>.jpg    review contact sheets and their poster frames
    state/stamps/<asset>.json                              stamps of materialized source files (an index)
    state/facts/source_images.json                         format, size, pixels, sha256 of each registered image
    state/refusals.json                                    resolutions a provider refused at submit
    state/latency.json                                     task durations learned per provider and request shape
    state/spend/<YYYY-MM-DD>.json                          what each attempt of a day commits, as last read (a cache)

Each function returns a path relative to the root; ``SeedanceStorage.path`` makes it absolute.
"""

from __future__ import annotations

IMAGES = "images"
PROMPTS = "prompts"
CLIPS = "clips"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif")
PROMPT_EXTENSIONS = (".yaml", ".yml")
TASKS_DAYS = "tasks/days"
TASKS_OPEN = "tasks/open"
TASKS_BY_FINGERPRINT = "tasks/by-fingerprint"


def clip_folder(prompt: str) -> str:
    return f"{CLIPS}/{prompt}"


def clip(prompt: str, image: str) -> str:
    return f"{clip_folder(prompt)}/{image}.mp4"


def sidecar_of(clip_path: str) -> str:
    """The JSON sidecar stored next to a clip (``.../<image>.mp4`` -> ``.../<image>.json``)."""
    return clip_path[: -len(".mp4")] + ".json"


def last_frame_of(clip_path: str) -> str:
    """The clip's last frame, stored beside it where the provider returns one (``.../<image>.last.png``)."""
    return clip_path[: -len(".mp4")] + ".last.png"


def versions_of(prompt: str, image: str) -> str:
    """The folder of a pair's earlier clips."""
    return f"{clip_folder(prompt)}/{image}.versions"


def clip_of(sidecar_path: str) -> str:
    """The clip a sidecar describes (``.../<image>.json`` -> ``.../<image>.mp4``)."""
    return sidecar_path[: -len(".json")] + ".mp4"


def kept_version(prompt: str, image: str, fingerprint: str) -> str:
    """Where an earlier clip of a pair is kept when a changed request replaces it (never thrown away)."""
    return f"{versions_of(prompt, image)}/{fingerprint}.mp4"


def report(day: str, extension: str) -> str:
    return f"reports/{day}/cost_report.{extension}"


REVIEWS = "reviews"
SELECTS = "selects"


def select_clip(prompt: str, image: str) -> str:
    """The approved take of a pair, copied out of ``clips/`` for the tools downstream (review/selects.py)."""
    return f"{SELECTS}/{prompt}/{image}.mp4"


def select_row(prompt: str, image: str) -> str:
    return f"{SELECTS}/{prompt}/{image}.json"


def manifest(prompt: str) -> str:
    return f"{SELECTS}/{prompt}/manifest.csv"


def pair_of(relative: str) -> tuple[str, str] | None:
    """(image, prompt) of a ``<prompt>/<image>.json`` path relative to ``reviews/`` or ``selects/``; None for any
    other file there (a manifest, a select's MP4)."""
    prompt, _, name = relative.partition("/")
    if not name.endswith(".json") or "/" in name:
        return None
    return name[: -len(".json")], prompt


def reviews(prompt: str) -> str:
    return f"reviews/{prompt}"


def review(prompt: str, image: str) -> str:
    """The decisions people made on the takes of one pair (review/store.py): plain JSON, editable by hand."""
    return f"reviews/{prompt}/{image}.json"


def gallery(prompt: str) -> str:
    return f"galleries/{prompt}.html"


def poster(prompt: str, image: str, fingerprint: str) -> str:
    """A take's first frame for its gallery (made once per take: the take's clip never changes)."""
    return f"galleries/{prompt}/{image}-{fingerprint[:16]}.jpg"


def task_day(day: str) -> str:
    return f"{TASKS_DAYS}/{day}"


def task_record(attempt_id: str) -> str:
    """An attempt's record, under the UTC day it started (its id begins with that day)."""
    return f"{task_day(attempt_id[:10])}/{attempt_id}.json"


def task_open(attempt_id: str) -> str:
    return f"{TASKS_OPEN}/{attempt_id}.json"


def task_markers(fingerprint: str) -> str:
    return f"{TASKS_BY_FINGERPRINT}/{fingerprint}"


def task_marker(fingerprint: str, attempt_id: str) -> str:
    return f"{task_markers(fingerprint)}/{attempt_id}"


def refusals() -> str:
    """What providers refused at submit though their pages promise it (planning/refusals.py)."""
    return "state/refusals.json"


def latency() -> str:
    """The task durations the poll schedules learned, per provider and request shape (production/latency.py)."""
    return "state/latency.json"


def stamps(asset: str) -> str:
    return f"state/stamps/{asset}.json"


def image_facts() -> str:
    """What registration learned of each image (planning/images.py): a plan that sends nothing reads no image."""
    return "state/facts/source_images.json"


def day_spend(day: str) -> str:
    """What each attempt of ``day`` commits against the daily budget, as a process last read it (ledger/day_spend.py):
    the next process re-reads only the records changed since."""
    return f"state/spend/{day}.json"
