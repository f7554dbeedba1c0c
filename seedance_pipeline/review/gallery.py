"""A review contact sheet per prompt, written to storage as ``galleries/<prompt>.html``: for each pair's current
take a poster frame, a playable ``<video>``, the image key, provider, seed, take, cost, every check and the review
state, with the exact commands that approve or reject it; the pair's earlier takes below it.

On a local folder the page links the clips by relative paths, so it opens from disk. On an object store the
links are presigned URLs that work without credentials until the time printed on the page.
"""

from __future__ import annotations

import html
import posixpath
import shlex
import time
from dataclasses import dataclass

from seedance_pipeline.clip.checks import CONTENT_RULES
from seedance_pipeline.clip.probe import VideoProbeError, poster_jpeg
from seedance_pipeline.review.records import PENDING, PairReviews
from seedance_pipeline.review.store import ReviewStore
from seedance_pipeline.review.takes import Take, prompt_takes
from seedance_pipeline.storage import layout
from seedance_pipeline.storage.resource import SeedanceStorage

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 24px; color: #1d2330; background: #f6f7f9; }
h1 { font-size: 20px; margin: 0 0 4px; } p.meta { color: #596275; margin: 0 0 18px; }
.sheet { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 16px; }
.card { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 10px; }
.card video { width: 100%; max-height: 360px; border-radius: 4px; background: #000; }
.card h2 { font-size: 15px; margin: 6px 0; } .state { float: right; font-weight: 600; }
.pending { color: #8a6d00; } .approved { color: #1b7f3b; } .rejected { color: #b3261e; }
table { border-collapse: collapse; width: 100%; } td { padding: 1px 4px; vertical-align: top; }
td:first-child { color: #596275; width: 90px; } code { font-size: 12px; word-break: break-all; }
.fail { color: #b3261e; font-weight: 600; } .warn { color: #8a5a00; font-weight: 600; }
ul.takes { margin: 6px 0 0; padding-left: 18px; color: #596275; }
"""


@dataclass(frozen=True)
class Gallery:
    prompt: str
    path: str  # where the page is (a local path or s3://...)
    takes: int  # current takes shown
    expires_at: float | None  # when its presigned links stop working (object stores)


def build_gallery(storage: SeedanceStorage, prompt: str) -> Gallery:
    takes = prompt_takes(storage, prompt)
    reviews, _ = ReviewStore(storage).load_prompt(prompt, list(takes))  # a bad review file shows as unreadable
    page_path = storage.path(layout.gallery(prompt))
    expires_at = None if storage.is_local else time.time() + storage.presign_expiry_s
    cards = []
    for image, pair in takes.items():
        current = next(t for t in pair if t.current)
        cards.append(_card(storage, page_path, current, [t for t in pair if not t.current], reviews.get(image)))
    until = (
        f"Links are presigned: they work without credentials until "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(expires_at))}; build the page again after that."
        if expires_at
        else "Links are relative: the page opens from the storage folder."
    )
    page = (
        f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(prompt)}: review</title>"
        f"<style>{STYLE}</style></head><body>\n<h1>{_e(prompt)}</h1>\n"
        f"<p class='meta'>{len(cards)} clip(s); built {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"{_e(until)}</p>\n<div class='sheet'>\n" + "\n".join(cards) + "\n</div>\n</body></html>\n"
    )
    storage.write_bytes(page_path, page.encode())
    return Gallery(prompt, storage.ref(page_path), len(cards), expires_at)


def _card(storage: SeedanceStorage, page: str, take: Take, earlier: list[Take], reviews: PairReviews | None) -> str:
    side = take.sidecar
    decision = reviews.latest(take.fingerprint) if reviews else None
    state = "unreadable review file" if reviews is None else decision.state if decision else PENDING
    poster = _poster(storage, take)
    checks = side.get("checks") or {}
    rows = [
        ("image", _e(take.image)),
        ("provider", _e(side.get("provider") or "-") + (" (simulated)" if side.get("simulated") else "")),
        ("seed", _e(side.get("seed") if side.get("seed") is not None else "-")),
        ("take", str(take.number)),
        ("cost", f"${take.cost_usd:.4f}"),
        *((f"{name}", _verdict(name, ok)) for name, ok in sorted(checks.items())),
    ]
    if decision:
        rows.append(("review", _e(f"{decision.reviewer}, {decision.at:%Y-%m-%d %H:%M}: {decision.note or '-'}")))
    where = f"--storage {shlex.quote(storage.ref(storage.root))} "
    clip = shlex.quote(take.clip)
    rows += [
        ("approve", f"<code>seedance-pipeline review approve {_e(where)}{_e(clip)}</code>"),
        ("reject", f"<code>seedance-pipeline review reject {_e(where)}{_e(clip)} --note '...'</code>"),
    ]
    older = "".join(
        f"<li><a href='{_e(_link(storage, page, t.path))}'>take {t.number}</a>: "
        f"{_e(reviews.state_of(t.fingerprint) if reviews else '?')}</li>"
        for t in earlier
    )
    return (
        f"<div class='card' data-clip='{_e(take.clip)}'>"
        f"<video controls preload='metadata' src='{_e(_link(storage, page, take.path))}'"
        + (f" poster='{_e(_link(storage, page, poster))}'" if poster else "")
        + f"></video><h2>{_e(take.image)} <span class='state {_e(state.split()[0])}'>{_e(state)}</span></h2>"
        "<table>"
        + "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
        + "</table>"
        + (f"<ul class='takes'>{older}</ul>" if older else "")
        + "</div>"
    )


def _verdict(check: str, passed: bool) -> str:
    """A tripped content rule is a warning for a person to weigh (severity WARN); a failed file check is not a take."""
    if passed:
        return "passed"
    if check in CONTENT_RULES:
        return "<span class='warn'>warning</span>"
    return "<span class='fail'>FAILED</span>"


def _poster(storage: SeedanceStorage, take: Take) -> str | None:
    """The take's first frame, made once (a take's clip never changes); None when the clip cannot be decoded."""
    path = storage.path(layout.poster(take.prompt, take.image, take.fingerprint))
    if storage.exists(path):
        return path
    try:
        with storage.fs.open(take.path, "rb") as fh:
            storage.write_bytes(path, poster_jpeg(fh))
    except (VideoProbeError, OSError):
        return None
    return path


def _link(storage: SeedanceStorage, page: str, target: str) -> str:
    if storage.is_local:
        return posixpath.relpath(target, posixpath.dirname(page))
    return storage.presign(storage.ref(target)) or storage.ref(target)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
