"""The simulator's own copy of the model's facts: frame rate and the output pixel size per ratio and resolution.

Deliberately not imported from the product (``core/model_spec.py``): the contract suite compares what the
product expects with what this simulator renders, so a wrong table in one of them fails instead of passing on
both sides. Written from docs/providers.md §2.2 (pixel sizes: the providers' published table).
"""

from __future__ import annotations

import math

FPS = 24

SIZES: dict[tuple[str, str], tuple[int, int]] = {
    ("16:9", "480p"): (864, 496),
    ("16:9", "720p"): (1280, 720),
    ("16:9", "1080p"): (1920, 1080),
    ("4:3", "480p"): (752, 560),
    ("4:3", "720p"): (1112, 834),
    ("4:3", "1080p"): (1664, 1248),
    ("1:1", "480p"): (640, 640),
    ("1:1", "720p"): (960, 960),
    ("1:1", "1080p"): (1440, 1440),
    ("3:4", "480p"): (560, 752),
    ("3:4", "720p"): (834, 1112),
    ("3:4", "1080p"): (1248, 1664),
    ("9:16", "480p"): (496, 864),
    ("9:16", "720p"): (720, 1280),
    ("9:16", "1080p"): (1080, 1920),
    ("21:9", "480p"): (992, 432),
    ("21:9", "720p"): (1470, 630),
    ("21:9", "1080p"): (2206, 946),
}
RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")


def follow_image(width: int, height: int) -> str:
    """The explicit ratio nearest the first frame (log scale): what the simulator renders for adaptive/auto."""
    aspect = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - aspect)

    return min(RATIOS, key=distance)
