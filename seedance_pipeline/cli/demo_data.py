"""``seedance-pipeline demo-data``: sample images and prompts for ``make demo`` (written only where missing, never
over a user's files)."""

from __future__ import annotations

import io
from importlib import resources

import click
from PIL import Image, ImageDraw

from seedance_pipeline.cli.common import open_storage, storage_option
from seedance_pipeline.storage.resource import SeedanceStorage

PROMPTS = {
    "dusk-dolly": """\
# A slow push-in; audio on (JieKou/Novita/WaveSpeed default it on, RunPod off: we always say).
text: "Slow dolly-in over the mountains at dusk, the sun sinking behind the ridge, warm light."
images: ["*"]
provider: novita
duration: 5
resolution: 720p
aspect_ratio: adaptive
generate_audio: true
camera_fixed: false
seed: 42
""",
    "quick-pan": """\
# A cheap 480p preview on RunPod (URL-only: images reach it as URLs).
text: "Gentle pan from left to right, soft wind moving the grass."
images: ["mountains", "tower"]
provider: runpod
duration: 4
resolution: 480p
aspect_ratio: adaptive
generate_audio: false
seed: 7
""",
}


def _tower(size: tuple[int, int]) -> bytes:
    w, h = size
    img = Image.new("RGB", size, (20, 24, 60))
    d = ImageDraw.Draw(img)
    for y in range(h):
        d.line([(0, y), (w, y)], fill=(20 + 80 * y // h, 24 + 40 * y // h, 60 + 100 * y // h))
    d.rectangle([w * 0.42, h * 0.3, w * 0.58, h], fill=(200, 190, 170))
    d.polygon([(w * 0.40, h * 0.3), (w * 0.5, h * 0.18), (w * 0.60, h * 0.3)], fill=(170, 60, 50))
    for i in range(6):
        d.rectangle([w * 0.47, h * (0.36 + i * 0.1), w * 0.53, h * (0.4 + i * 0.1)], fill=(255, 220, 120))
    return _png(img)


def _tiles(size: tuple[int, int]) -> bytes:
    w, h = size
    img = Image.new("RGB", size, (240, 240, 235))
    d = ImageDraw.Draw(img)
    for i in range(8):
        for j in range(8):
            if (i + j) % 2:
                d.rectangle(
                    [i * w / 8, j * h / 8, (i + 1) * w / 8, (j + 1) * h / 8], fill=(40 + 25 * i, 90, 160 - 12 * j)
                )
    d.ellipse([w * 0.3, h * 0.3, w * 0.7, h * 0.7], fill=(250, 200, 40))
    return _png(img)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def write_demo_data(storage: SeedanceStorage) -> list[str]:
    """Write the sample files that are missing; return what was written."""
    files = {
        "images/mountains.png": resources.files("seedance_pipeline").joinpath("sample_data/sample.png").read_bytes(),
        "images/tower.png": _tower((540, 960)),
        "images/tiles.png": _tiles((720, 720)),
        **{f"prompts/{k}.yaml": v.encode() for k, v in PROMPTS.items()},
    }
    written = []
    for rel, data in files.items():
        path = storage.path(*rel.split("/"))
        if not storage.exists(path):
            storage.write_bytes(path, data)
            written.append(rel)
    return written


@click.command("demo-data")
@storage_option
def demo_data(storage_url: str | None) -> None:
    """Write three sample images and two prompts into storage (only files that are missing)."""
    storage = open_storage(storage_url)
    written = write_demo_data(storage)
    click.echo(
        f"wrote {len(written)} sample file(s) into {storage.url}" + (": " + ", ".join(written) if written else "")
    )
