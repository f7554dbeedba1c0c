"""Facts about the Seedance 1.5 Pro model itself, shared by every provider.

Source: ``docs/providers.md`` §2.2 (pixel sizes, [SRC-3P]) and §2.1 (24 fps, 4-12 s).
"""

from __future__ import annotations

import functools

MODEL_NAME = "seedance-1.5-pro-i2v"
FPS = 24
MIN_DURATION_S = 4
MAX_DURATION_S = 12

RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
ADAPTIVE = "adaptive"
RESOLUTIONS = ("480p", "720p", "1080p")

# width x height per (ratio, resolution), docs/providers.md §2.2.
PIXEL_SIZES: dict[tuple[str, str], tuple[int, int]] = {
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


def ratio_value(ratio: str) -> float:
    w, h = ratio.split(":")
    return int(w) / int(h)


@functools.lru_cache(maxsize=1024)
def nearest_ratio(width: int, height: int) -> str:
    """The explicit ratio closest to an image's aspect (compared on a log scale).

    This is what ``adaptive`` resolves to; none of the providers documents the exact rule
    (docs/providers.md §2.3, [UNKNOWN]), so this is our documented assumption.
    """
    import math

    aspect = math.log(width / height)
    return min(RATIOS, key=lambda r: abs(math.log(ratio_value(r)) - aspect))


def pixel_size(ratio: str, resolution: str, image_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Output width x height; ``adaptive`` needs the first frame's size."""
    if ratio == ADAPTIVE:
        if image_size is None:
            raise ValueError("adaptive aspect ratio needs the first frame's pixel size")
        ratio = nearest_ratio(*image_size)
    return PIXEL_SIZES[(ratio, resolution)]


def frame_count(duration_s: int) -> int:
    """Frames of a clip of ``duration_s`` seconds at 24 fps (what the checks and the simulator's renders hold)."""
    return FPS * duration_s


def billed_frames(duration_s: int) -> int:
    """Frames of a clip as ByteDance counts them for billing: 24·d + 1 (docs/providers.md §2.4 [INF])."""
    return FPS * duration_s + 1


def billed_height(height: int) -> int:
    """The height ByteDance bills: padded to a multiple of 16 (1080 -> 1088; docs/providers.md §2.4 [INF])."""
    return -(-height // 16) * 16
