"""Real MP4 clips for the provider simulator: a slow pan over the input still image.

Every successful simulated task returns a genuine H.264 MP4 (24 fps, the exact pixel size and
frame count the real model would return, an AAC tone exactly when audio was asked for), so the
downstream asset checks probe real files.

How a clip is made (one ``ffmpeg`` run, no shell):

* Pillow decodes the input (PNG/JPEG/WebP/GIF/BMP/TIFF, EXIF orientation applied, alpha flattened
  onto black) and scales it to *cover* ``COVER`` x the frame (aspect preserved), so there is a
  margin to pan across. The raw RGB frame goes to ffmpeg on stdin.
* ffmpeg repeats that one frame ``24 * duration_s`` times (``loop`` filter), stamps exact 24 fps
  timestamps, converts it to yuv420p once, then crops ``width x height`` at an offset that moves
  linearly with ``t`` (direction chosen by ``seed % 4``), and encodes with libx264 ``ultrafast``.
* With audio, a sine tone (frequency from ``seed``) of exactly the clip's duration is encoded as AAC.
* ``+bitexact`` flags, no metadata, fixed encoder thread count: same inputs -> same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pathlib
import subprocess
import tempfile

from seedance_pipeline.simulator.model import FPS

# How much larger than the frame the image is scaled (each axis at least), to leave pan room.
COVER = 1.10
# x264 thread count is fixed so the bytes do not depend on the machine's CPU count
# (x264 records its settings, thread count included, in the stream).
_X264_THREADS = 2
_AUDIO_RATE = 48_000
_RENDER_VERSION = b"render-v1"  # bump when the output for the same inputs changes
_FFMPEG_TIMEOUT_S = 300


class RenderError(Exception):
    """The clip could not be rendered (undecodable image, bad parameters, or ffmpeg failed)."""


_ffmpeg_exe: str | None = None


def _ffmpeg() -> str:
    global _ffmpeg_exe
    if _ffmpeg_exe is None:
        import imageio_ffmpeg

        _ffmpeg_exe = imageio_ffmpeg.get_ffmpeg_exe()
    return _ffmpeg_exe


def _cache_key(image_bytes: bytes, width: int, height: int, duration_s: int, audio: bool, seed: int) -> str:
    h = hashlib.sha256()
    h.update(_RENDER_VERSION + b"\0")
    h.update(f"{width}x{height}|{duration_s}|{int(bool(audio))}|{seed}\0".encode())
    h.update(image_bytes)
    return h.hexdigest()


def _decode_cover(image_bytes: bytes, width: int, height: int) -> tuple[bytes, int, int]:
    """Decode the image and scale it to cover COVER x (width, height); raw RGB24 bytes + size."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image_bytes)) as im:
            im.seek(0)  # first frame of an animated GIF/WebP
            src_w, src_h = im.size
            if src_w <= 0 or src_h <= 0:
                raise RenderError(f"image has no pixels ({src_w}x{src_h})")
            need_w, need_h = width * COVER, height * COVER
            # Let JPEG decode at a reduced scale when the source is much larger than needed.
            scale_hint = max(need_w / src_w, need_h / src_h)
            if im.format == "JPEG" and scale_hint < 0.5:
                im.draft("RGB", (int(src_w * scale_hint) + 1, int(src_h * scale_hint) + 1))
            frame: Image.Image = ImageOps.exif_transpose(im)
            if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
                rgba = frame.convert("RGBA")
                frame = Image.new("RGB", rgba.size, (0, 0, 0))
                frame.paste(rgba, mask=rgba.getchannel("A"))
            elif frame.mode != "RGB":
                frame = frame.convert("RGB")
            src_w, src_h = frame.size
            scale = max(need_w / src_w, need_h / src_h)
            cw = max(width + 2, round(src_w * scale))
            ch = max(height + 2, round(src_h * scale))
            if (cw, ch) != (src_w, src_h):
                frame = frame.resize((cw, ch), Image.Resampling.BILINEAR, reducing_gap=3.0)
            return frame.tobytes(), cw, ch
    except RenderError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RenderError(f"cannot decode input image: {exc}") from exc


def _pan_exprs(seed: int, mx: int, my: int, duration_s: int) -> tuple[str, str]:
    """Crop x/y expressions (in ``t``) for a linear pan across the margin; direction = seed % 4."""
    d = float(duration_s)
    forward_x, forward_y = f"{mx}*t/{d}", f"{my}*t/{d}"
    back_x, back_y = f"{mx}*(1-t/{d})", f"{my}*(1-t/{d})"
    mid_x, mid_y = str(mx // 2), str(my // 2)
    direction = seed % 4
    if direction == 0:  # left -> right, drifting down
        return forward_x, forward_y
    if direction == 1:  # right -> left
        return back_x, mid_y
    if direction == 2:  # top -> bottom
        return mid_x, forward_y
    return back_x, back_y  # bottom-right -> top-left


def _ffmpeg_args(
    cw: int, ch: int, width: int, height: int, duration_s: int, audio: bool, seed: int, out_path: str
) -> list[str]:
    n = FPS * duration_s
    x, y = _pan_exprs(seed, cw - width, ch - height, duration_s)
    video = (
        f"[0:v]format=yuv420p,loop=loop={n - 1}:size=1:start=0,"
        f"setpts=N/({FPS}*TB),"
        f"crop=w={width}:h={height}:x='{x}':y='{y}',"
        f"setsar=1[v]"
    )
    args = [
        _ffmpeg(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", f"{cw}x{ch}", "-framerate", str(FPS),
        "-i", "pipe:0",
    ]  # fmt: skip
    graph = video
    if audio:
        freq = 220 + (seed % 16) * 55  # 220..1045 Hz
        graph += f";sine=frequency={freq}:sample_rate={_AUDIO_RATE}:duration={duration_s},volume=0.2[a]"
    args += ["-filter_complex", graph, "-map", "[v]"]
    if audio:
        args += ["-map", "[a]"]
    args += [
        "-frames:v", str(n), "-r", str(FPS), "-fps_mode", "cfr",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage", "-crf", "28",
        "-pix_fmt", "yuv420p", "-threads:v", str(_X264_THREADS),
        "-g", str(FPS * 2), "-x264-params", "scenecut=0",
    ]  # fmt: skip
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k", "-ac", "1", "-ar", str(_AUDIO_RATE), "-t", str(duration_s)]
    else:
        args += ["-an"]
    args += [
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-map_metadata", "-1", "-map_chapters", "-1",
        "-movflags", "+faststart", "-f", "mp4", "-y", out_path,
    ]  # fmt: skip
    return args


def _run_ffmpeg(
    image_bytes: bytes, width: int, height: int, duration_s: int, audio: bool, seed: int, out_path: str
) -> None:
    raw, cw, ch = _decode_cover(image_bytes, width, height)
    args = _ffmpeg_args(cw, ch, width, height, duration_s, audio, seed, out_path)
    try:
        proc = subprocess.run(args, input=raw, capture_output=True, timeout=_FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"ffmpeg timed out after {_FFMPEG_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise RenderError(f"cannot run ffmpeg: {exc}") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
        raise RenderError(f"ffmpeg exited with status {proc.returncode}: {tail}")


def _validate(width: int, height: int, duration_s: int, seed: int) -> None:
    for name, value in (("width", width), ("height", height), ("duration_s", duration_s), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise RenderError(f"{name} must be an int, got {value!r}")
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise RenderError(f"frame size must be even and at least 16x16 for yuv420p, got {width}x{height}")
    if duration_s < 1:
        raise RenderError(f"duration_s must be >= 1, got {duration_s}")


def render_clip(
    image_bytes: bytes,
    width: int,
    height: int,
    duration_s: int,
    audio: bool,
    seed: int,
    cache_dir: pathlib.Path | None = None,
) -> bytes:
    """Render a ``duration_s`` s, 24 fps, ``width`` x ``height`` H.264 MP4 panning over the image.

    Deterministic: the same arguments give the same bytes. With ``cache_dir``, the result is
    stored as ``<cache_dir>/<sha256>.mp4`` (written atomically) and reused on the next call.
    Raises :class:`RenderError` when the image cannot be decoded or ffmpeg fails.
    """
    _validate(width, height, duration_s, seed)
    image_bytes = bytes(image_bytes)
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="seedance-render-") as tmp:
            out = os.path.join(tmp, "clip.mp4")
            _run_ffmpeg(image_bytes, width, height, duration_s, audio, seed, out)
            with open(out, "rb") as f:
                return f.read()

    cache_dir = pathlib.Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / f"{_cache_key(image_bytes, width, height, duration_s, audio, seed)}.mp4"
    try:
        return final.read_bytes()
    except FileNotFoundError:
        pass
    fd, tmp_path = tempfile.mkstemp(prefix=f".{final.stem[:16]}-", suffix=".mp4.tmp", dir=cache_dir)
    os.close(fd)
    try:
        _run_ffmpeg(image_bytes, width, height, duration_s, audio, seed, tmp_path)
        with open(tmp_path, "rb") as f:
            data = f.read()
        os.replace(tmp_path, final)  # atomic; concurrent renderers write identical bytes
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise
    return data
