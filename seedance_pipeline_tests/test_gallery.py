"""The review gallery (issue 17 §2): one contact sheet per prompt in storage, every take's clip playable from it,
its poster, facts and review state, and the exact commands that decide on it; in real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from seedance_pipeline.cli import main
from seedance_pipeline.cli.demo_data import write_demo_data
from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.clip.probe import probe_video
from seedance_pipeline.storage import layout


class _Cards(HTMLParser):
    """Each card's clip, its video's src and poster, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: dict[str, dict] = {}
        self._card: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and a.get("class") == "card":
            self._card = self.cards[a["data-clip"]] = {"text": "", "links": []}
        elif self._card is not None and tag == "video":
            self._card.update(src=a["src"], poster=a.get("poster"))
        elif self._card is not None and tag == "a":
            self._card["links"].append(a["href"])

    def handle_data(self, data):
        if self._card is not None:
            self._card["text"] += data


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def reviewed(storage, providers, instance, sim, monkeypatch):
    monkeypatch.setenv("USER", "ana")
    monkeypatch.delenv("LOGNAME", raising=False)
    write_demo_data(storage)
    assert run_pipeline(instance, storage, providers).ok
    cli("review", "reject", "--storage", storage.root, "tower|quick-pan", "--note", "the tower bends")
    cli("review", "approve", "--storage", storage.root, "mountains|quick-pan")
    return storage


def cards(storage, prompt: str) -> dict[str, dict]:
    parser = _Cards()
    parser.feed(storage.read_bytes(storage.path(layout.gallery(prompt))).decode())
    return parser.cards


def test_each_prompt_gets_a_sheet_of_its_takes_with_the_commands_to_decide(reviewed):
    storage = reviewed
    pages = {p["prompt"]: p for p in json.loads(cli("gallery", "--storage", storage.root, "--json"))}
    assert {p: (v["takes"], v["path"]) for p, v in pages.items()} == {
        "dusk-dolly": (3, storage.path("galleries/dusk-dolly.html")),
        "quick-pan": (2, storage.path("galleries/quick-pan.html")),
    }
    sheet = cards(storage, "quick-pan")
    assert set(sheet) == {"mountains|quick-pan", "tower|quick-pan"}
    page_dir = Path(storage.path("galleries"))
    for clip, card in sheet.items():
        image, prompt = clip.split("|")
        sidecar = json.loads(storage.read_bytes(storage.sidecar_path(prompt, image)))
        assert (page_dir / card["src"]).resolve() == Path(storage.clip_path(prompt, image))  # relative: opens from disk
        poster = (page_dir / card["poster"]).resolve()
        assert poster.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG
        text = re.sub(r"\s+", " ", card["text"])
        assert f"seed{sidecar['seed']}" in text.replace(" ", "") and "take1" in text.replace(" ", "")
        assert f"review approve --storage {storage.root} '{clip}'" in text
        assert f"review reject --storage {storage.root} '{clip}' --note" in text
        assert "plays_to_endpassed" in text.replace(" ", "") and "matches_requestpassed" in text.replace(" ", "")
    assert "rejected" in sheet["tower|quick-pan"]["text"] and "the tower bends" in sheet["tower|quick-pan"]["text"]
    assert "approved" in sheet["mountains|quick-pan"]["text"]
    # Built again: the posters are not made again (a take's clip never changes).
    poster = page_dir / sheet["tower|quick-pan"]["poster"]
    made = poster.stat().st_mtime_ns
    cli("gallery", "--storage", storage.root, "--prompt", "quick-pan")
    assert poster.stat().st_mtime_ns == made


def test_a_new_take_shows_with_its_earlier_takes_linked(reviewed, providers, instance):
    storage = reviewed
    path = storage.path("prompts", "quick-pan.yaml")
    storage.write_bytes(path, storage.read_bytes(path).replace(b"Gentle pan", b"Brisk pan"))
    assert run_pipeline(instance, storage, providers).ok
    cli("gallery", "--storage", storage.root, "--prompt", "quick-pan")
    card = cards(storage, "quick-pan")["tower|quick-pan"]
    assert "take2" in card["text"].replace(" ", "") and "pending" in card["text"]
    [older] = card["links"]
    kept = (Path(storage.path("galleries")) / older).resolve()
    assert kept.parent.name == "tower.versions" and kept.exists()
    assert "take 1: rejected" in card["text"]


@pytest.mark.browser
@pytest.mark.slow
def test_the_sheet_plays_every_clip_in_chromium(reviewed, tmp_path):
    from seedance_pipeline_tests.cdp import Browser

    storage = reviewed
    cli("gallery", "--storage", storage.root)
    for prompt in ("dusk-dolly", "quick-pan"):
        expected = {
            clip: probe_video(storage.clip_path(prompt, clip.split("|")[0])).duration_s
            for clip in cards(storage, prompt)
        }
        with Browser(tmp_path / f"profile-{prompt}") as browser:
            page = browser.open(f"file://{storage.path(layout.gallery(prompt))}")
            page.wait_for("[...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error)")
            videos = page.value(
                "[...document.querySelectorAll('.card')].map(c => { const v = c.querySelector('video');"
                " return [c.dataset.clip, v.readyState, v.duration, v.error && v.error.code, v.videoWidth] })"
            )
            shot = tmp_path / f"gallery-{prompt}.png"
            page.screenshot(shot)
            errors = page.errors
        assert errors == []
        assert {clip: round(duration, 2) for clip, _, duration, _, _ in videos} == {
            clip: round(d, 2) for clip, d in expected.items()
        }
        assert all(state >= 1 and error is None and width > 0 for _, state, _, error, width in videos), videos
        assert shot.stat().st_size > 20_000  # a rendered sheet, not a blank page
        keep = os.environ.get("SEEDANCE_UI_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / shot.name)
