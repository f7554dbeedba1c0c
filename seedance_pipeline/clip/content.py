"""What a clip shows, measured during the decode the probe does anyway: small grey thumbnails of the first and
last frames, each frame's brightness and spread, how far the picture moves, and how loud the audio is.

Dagster-free and I/O-free: ``probe.py`` feeds every decoded frame to a :class:`ContentSampler`; ``checks.py``
judges the figures. Frames are sampled on a coarse grid of the luma plane (no conversion, no scaling): per
frame a strided copy of about 1,300 bytes, judged all at once at the end. One audio packet in AUDIO_EVERY is
decoded. Only the first and last frames are scaled down properly (FFmpeg, area averaging), for the comparison
with the source images. Thresholds and how they were calibrated: docs/checks.md.
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

THUMB = 32  # the first/last frame and the source images are compared as THUMB x THUMB grey pictures
_GRID = 48  # luma samples across a frame for the per-frame figures
AUDIO_EVERY = 4  # decode one audio packet in this many: decoding them all is most of the sampling's CPU
MOVED = 24  # a luma sample this much (0..255) away from the first frame's has changed: above codec noise


@dataclass
class ContentSample:
    """The figures of one clip, as the checks read them."""

    first: np.ndarray | None = None  # THUMB x THUMB grey, float32
    last: np.ndarray | None = None
    means: list[float] = field(default_factory=list)  # per frame: mean luma 0..255
    spreads: list[float] = field(default_factory=list)  # per frame: luma standard deviation
    motion: float = 0.0  # the largest share (0..1) of the frame that changed by > MOVED luma levels from the first
    audio_rms_dbfs: float | None = None  # None: no audio decoded


class ContentSampler:
    """Fed each decoded video frame and audio frame, in order, by ``probe.probe_video``."""

    def __init__(self) -> None:
        self.sample = ContentSample()
        self._grids: list[np.ndarray] = []
        self._last_frame: Any = None
        self._square_sum = 0.0
        self._samples = 0
        self._audio_packets = 0

    def video(self, frame: Any) -> None:
        self._grids.append(_luma_grid(frame))  # judged all at once in finish(): numpy calls per frame cost more
        if self.sample.first is None:
            self.sample.first = _thumb(frame)
        self._last_frame = frame

    def wants_audio_packet(self) -> bool:
        """Whether to decode the next audio packet: one in AUDIO_EVERY, spread over the clip (a packet decodes on
        its own, the level of a sample of them is the level of the track)."""
        self._audio_packets += 1
        return self._audio_packets % AUDIO_EVERY == 1

    def audio(self, frame: Any) -> None:
        raw = frame.to_ndarray()
        samples = raw.astype(np.float64)
        if raw.dtype.kind in "iu":  # s16/s32 decoders: full scale is the integer range
            samples /= float(np.iinfo(raw.dtype).max)
        self._square_sum += float(np.square(samples).sum())
        self._samples += samples.size

    def finish(self) -> ContentSample:
        if self._grids:
            grids = np.stack(self._grids).astype(np.float32)  # frames x rows x columns
            flat = grids.reshape(len(grids), -1)
            self.sample.means = flat.mean(axis=1).tolist()
            self.sample.spreads = flat.std(axis=1).tolist()
            self.sample.motion = float((np.abs(flat - flat[0]) > MOVED).mean(axis=1).max())
            self._grids = []
        if self._last_frame is not None:
            self.sample.last = _thumb(self._last_frame)
            self._last_frame = None
        if self._samples:
            rms = math.sqrt(self._square_sum / self._samples)
            self.sample.audio_rms_dbfs = round(20 * math.log10(rms), 1) if rms > 0 else -math.inf
        return self.sample


def _luma_grid(frame: Any) -> np.ndarray:
    """About _GRID x (_GRID * h / w) samples of the luma plane (a strided view, then one small copy)."""
    plane = frame.planes[0]
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]
    step = max(1, frame.width // _GRID)
    return rows[step // 2 :: step, step // 2 :: step].copy()


def _thumb(frame: Any) -> np.ndarray:
    # One scaling thread, as the decoder has (probe.py): FFmpeg's default starts a pool per call, which costs more
    # CPU than scaling one frame (benchmarks/README.md, M4).
    small = frame.reformat(width=THUMB, height=THUMB, format="gray", interpolation="AREA", threads=1)
    return small.to_ndarray().astype(np.float32)


_THUMBS: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
_THUMBS_KEPT = 4096  # 1 KiB each
_THUMBS_LOCK = threading.Lock()


def thumb_of(sha256: str, width: int, height: int, read: Callable[[], bytes]) -> np.ndarray:
    """``source_thumb`` of the image with this sha256, remembered: an image feeds every prompt that targets it,
    and is read (``read``) and decoded once per frame shape in a process."""
    key = (sha256, width, height)
    with _THUMBS_LOCK:
        if key in _THUMBS:
            _THUMBS.move_to_end(key)
            return _THUMBS[key]
    thumb = source_thumb(read(), width, height)
    with _THUMBS_LOCK:
        _THUMBS[key] = thumb
        while len(_THUMBS) > _THUMBS_KEPT:
            _THUMBS.popitem(last=False)
    return thumb


def source_thumb(image_bytes: bytes, width: int, height: int) -> np.ndarray:
    """The source image as the clip should show it: cover-cropped to ``width``:``height`` (centred), grey,
    THUMB x THUMB."""
    with Image.open(io.BytesIO(image_bytes)) as im:
        im.seek(0)
        if im.format == "JPEG":
            im.draft("L", (THUMB * 4, THUMB * 4))
        upright = ImageOps.exif_transpose(im)
        if upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info):
            rgba = upright.convert("RGBA")
            upright = Image.new("RGB", rgba.size, (0, 0, 0))  # alpha onto black, as the providers flatten it
            upright.paste(rgba, mask=rgba.getchannel("A"))
        grey = upright.convert("L")
    w, h = grey.size
    scale = min(w / width, h / height)
    cw, ch = min(w, width * scale), min(h, height * scale)
    box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
    small = grey.resize((THUMB, THUMB), Image.Resampling.BOX, box=box, reducing_gap=2.0)
    thumb = np.asarray(small, dtype=np.float32)
    thumb.setflags(write=False)
    return thumb


def similarity(a: np.ndarray, b: np.ndarray, block: int = 8) -> float:
    """Structural similarity (SSIM, constants of Wang et al. 2004 for 8-bit) averaged over ``block`` x ``block``
    tiles of two THUMB x THUMB grey pictures: 1 identical, about 0 unrelated."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    n = a.shape[0] // block
    ta = a[: n * block, : n * block].reshape(n, block, n, block).swapaxes(1, 2).reshape(n, n, -1)
    tb = b[: n * block, : n * block].reshape(n, block, n, block).swapaxes(1, 2).reshape(n, n, -1)
    ma, mb = ta.mean(-1), tb.mean(-1)
    va, vb = ta.var(-1), tb.var(-1)
    cov = ((ta - ma[..., None]) * (tb - mb[..., None])).mean(-1)
    ssim = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return round(float(ssim.mean()), 4)
