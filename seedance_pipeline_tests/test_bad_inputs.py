"""Bad input, one table: each row goes through the real pipeline (``run_pipeline`` on a Dagster instance,
providers on a simulator over loopback HTTP) next to a good image and prompt.

Every row asserts that
- the run names the bad field, its value and the rule in one line (a failure, or an ignored file),
- no request for it reached any provider: the simulator counted exactly the good clip's requests,
- the good clip was still made, and the bad input materialized nothing.

Request-level rules are also unit-tested against ``prepare`` in test_validation.py (the rules
themselves); this table proves they hold on the user's path, through storage and Dagster.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import dagster as dg
import pytest
from PIL import Image

from seedance_pipeline.cli.runner import run_pipeline
from seedance_pipeline.providers.resource import SeedanceProviders
from seedance_pipeline.simulator.server import SimulatorServer
from seedance_pipeline_tests.conftest import FAST, fast_config, png, put

pytestmark = pytest.mark.slow

GOOD_PROMPT = "text: a calm lake\nimages: [good]\nprovider: novita\nduration: 4\nresolution: 480p\nseed: 1\n"


def image(size=(800, 450), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 140, 30)).save(buf, format=fmt)
    return buf.getvalue()


def prompt(provider="novita", images="[good]", **fields) -> str:
    body = {
        "text": "a slow pan",
        "images": images,
        "provider": provider,
        "duration": 4,
        "resolution": "480p",
        "seed": 1,
        **fields,
    }
    return "".join(f"{k}: {v}\n" for k, v in body.items() if v is not None)


def on_image(name: str, data: bytes, provider: str = "novita") -> dict[str, bytes | str]:
    """A bad image plus a prompt that targets it."""
    stem = name.rsplit(".", 1)[0]
    return {f"images/{name}": data, "prompts/bad.yaml": prompt(provider, images=f"[{stem!r}]")}


@dataclass(frozen=True)
class Row:
    id: str
    files: dict[str, bytes | str]
    field: str
    value: str  # as it must appear in the message
    rule: str
    ignored: bool = False  # reported as an ignored file (storage scan) rather than a failure


def bad_prompt(id, field, value, rule, **fields) -> Row:
    return Row(id, {"prompts/bad.yaml": prompt(**fields)}, field, value, rule)


TOO_BIG = b"\x89PNG\r\n\x1a\n" + b"\0" * (31 * 1024 * 1024)

ROWS = [
    # -- prompt files: unknown keys, wrong types, ranges ---------------------------------------------
    Row("unknown-key", {"prompts/bad.yaml": GOOD_PROMPT + "colour: blue\n"}, "colour", "'blue'", "unknown field"),
    Row(
        "unknown-key-typo",
        {"prompts/bad.yaml": GOOD_PROMPT.replace("duration", "durations")},
        "durations",
        "4",
        "unknown field",
    ),
    bad_prompt("duration-wrong-type", "duration", "'five'", "valid integer", duration="five"),
    bad_prompt("duration-3", "duration", "3", "greater than or equal to 4", duration=3),
    bad_prompt("duration-13", "duration", "13", "less than or equal to 12", duration=13),
    bad_prompt("duration-float", "duration", "4.5", "integer", duration=4.5),
    bad_prompt("audio-wrong-type", "generate_audio", "'maybe'", "valid boolean", generate_audio="maybe"),
    bad_prompt("provider-unknown", "provider", "'openai'", "'runpod'", provider="openai"),
    bad_prompt("resolution-unknown", "resolution", "'4k'", "'480p'", resolution="4k"),
    bad_prompt("1080p-runpod", "resolution", "'1080p'", "480p, 720p", provider="runpod", resolution="1080p"),
    bad_prompt("1080p-wavespeed", "resolution", "'1080p'", "480p, 720p", provider="wavespeed", resolution="1080p"),
    bad_prompt("seed-negative", "seed", "-2", "greater than or equal to -1", seed=-2),
    bad_prompt("seed-runpod", "seed", "4294967296", "4294967295", provider="runpod", seed=4294967296),
    bad_prompt("seed-wavespeed", "seed", "2147483648", "2147483647", provider="wavespeed", seed=2147483648),
    bad_prompt("seed-jiekou", "seed", "4294967296", "4294967295", provider="jiekou", seed=4294967296),
    bad_prompt("seed-novita", "seed", "4294967296", "4294967295", provider="novita", seed=4294967296),
    bad_prompt("seed-vibedream", "seed", "1001", "1000", provider="vibedream", seed=1001),
    bad_prompt("ratio-auto", "aspect_ratio", "'auto'", "write 'adaptive'", aspect_ratio="auto"),
    bad_prompt("ratio-unknown", "aspect_ratio", "'5:4'", "'16:9'", aspect_ratio="'5:4'"),
    bad_prompt("flex-on-runpod", "service_tier", "'flex'", "runpod", provider="runpod", service_tier="flex"),
    bad_prompt("text-blank", "text", "'   '", "must not be blank", text="'   '"),
    bad_prompt("images-empty", "images", "[]", "at least 1 item", images="[]"),
    bad_prompt(
        "last-image-escapes-prefix",
        "last_image",
        "'../../etc/passwd'",
        "must be an http(s) URL or an image key",
        last_image="'../../etc/passwd'",
    ),
    bad_prompt("last-image-missing", "last_image", "'nowhere'", "no such image in storage", last_image="nowhere"),
    Row("not-a-mapping", {"prompts/bad.yaml": "- text: a\n- text: b\n"}, "(file)", "'list'", "must be a mapping"),
    Row("not-yaml", {"prompts/bad.yaml": "text: [unclosed\n"}, "(file)", "None", "not valid YAML"),
    # -- images ----------------------------------------------------------------------------------------
    Row("image-too-small", on_image("tiny.png", image((299, 400))), "image", "tiny.png", "width is 299"),
    Row("image-side-too-large", on_image("tall.png", image((400, 6001))), "image", "tall.png", "height is 6001"),
    Row("image-wrong-aspect", on_image("strip.png", image((1000, 320))), "image", "strip.png", "aspect"),
    Row("not-an-image", on_image("notes.png", b"hello, I am text"), "image", "notes.png", "not a readable image"),
    Row("png-renamed-jpg", on_image("photo.jpg", image()), "image", "photo.jpg", "says JPEG but the content is PNG"),
    Row("31-mb-file", on_image("huge.png", TOO_BIG), "image", "huge.png", "30 MB"),
    Row(
        "bmp-on-vibedream",
        on_image("scan.bmp", image(fmt="BMP"), "vibedream"),
        "image",
        "scan.bmp",
        "BMP is not accepted",
    ),
    # -- file names that cannot be partition keys (or would escape the storage prefix) ----------------
    *[
        Row(
            f"name-{label}",
            {f"images/{name}": image()},
            "file name",
            repr(name.rsplit(".", 1)[0]),
            "cannot be a partition key",
            ignored=True,
        )
        for label, name in [
            ("pipe", "a|b.png"),
            ("comma", "a,b.png"),
            ("dotdot", "a..b.png"),
            ("only-dots", "...png"),
            ("unicode", "ünïcödé.png"),
            ("space", "two words.png"),
            ("leading-dash", "-x.png"),
            ("leading-dot", ".hidden.png"),
            ("too-long", "k" * 129 + ".png"),
        ]
    ],
    Row(
        "prompt-name-pipe",
        {"prompts/x|y.yaml": GOOD_PROMPT.replace("good", "*")},
        "file name",
        "'x|y'",
        "cannot be a partition key",
        ignored=True,
    ),
    Row(
        "image-wrong-extension",
        {"images/clip.mp4": b"\0\0\0\x18ftypmp42"},
        "clip.mp4",
        "clip.mp4",
        "not one of .png",
        ignored=True,
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("render-cache"))
    with SimulatorServer(fast_config(render_cache_dir=cache)) as srv:
        yield srv


def counts(srv: SimulatorServer) -> dict[str, dict[str, int]]:
    return srv.sim.stats()["requests"]


def test_the_table_is_big_enough():
    assert len(ROWS) >= 30 and len({r.id for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_named_and_never_sent(row: Row, server, storage, instance):
    providers = SeedanceProviders(simulator_url=server.base_url, simulator_latency_s=FAST)
    put(storage, "images/good.png", png())
    put(storage, "prompts/ok.yaml", GOOD_PROMPT)
    for rel, data in row.files.items():
        put(storage, rel, data)
    before = counts(server)
    report = run_pipeline(instance, storage, providers)

    lines = report.ignored if row.ignored else report.failures
    named = [line for line in lines if row.field in line and row.value in line and row.rule in line]
    assert named, f"no line names {row.field} / {row.value} / {row.rule}:\n" + "\n".join(
        report.failures + report.ignored
    )
    if row.ignored:
        assert report.ok, report.failures
    # Only the good clip's requests reached a provider: one submit, all to Novita.
    after = counts(server)
    delta = {p: {e: after[p][e] - before[p][e] for e in after[p]} for p in after}
    assert delta["novita"]["submit"] == 1, delta
    assert all(n == 0 for p, per in delta.items() if p != "novita" for n in per.values()), delta
    # The good clip is stored; nothing else is.
    assert [c.clip for c in report.clips] == ["good|ok"]
    stored = {p.rsplit("/clips/", 1)[1] for p in storage.fs.find(storage.path("clips"))}
    assert stored == {"ok/good.mp4", "ok/good.json"}
    made = {r.partition_key for r in instance.fetch_materializations(dg.AssetKey("clips"), limit=50).records}
    assert made == {"good|ok"}
    prompts_made = {r.partition_key for r in instance.fetch_materializations(dg.AssetKey("prompts"), limit=50).records}
    assert prompts_made <= {"ok", "bad"} and "ok" in prompts_made
