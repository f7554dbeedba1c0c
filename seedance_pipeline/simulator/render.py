"""Real MP4 clips for the provider simulator: a slow push-in on the input still image.

Every successful simulated task returns a genuine H.264 MP4 (24 fps, the exact pixel size and
frame count the real model would return, an AAC tone exactly when audio was asked for), so the
downstream asset checks probe real files, content checks included.

How a clip is made (one ``ffmpeg`` run, no shell):

* Pillow decodes the input (PNG/JPEG/WebP/GIF/BMP/TIFF, EXIF orientation applied, alpha flattened
  onto black), scales it to cover ``COVER`` x the frame and crops the centre to that size, the frame's
  aspect. The raw RGB frame goes to ffmpeg on stdin.
* ffmpeg's ``zoompan`` makes ``24 * duration_s`` frames of it: the first shows the whole image (the source,
  cover-cropped to the frame, as the real model starts from it), then the view narrows linearly to
  1 / ``COVER`` of it, towards a corner or an edge chosen by ``seed % 4``; exact 24 fps timestamps; libx264
  ``ultrafast``.
* A two-tone box (the "subject") crosses the frame, so every clip moves, even over a flat image.
* With a last image (cover-cropped to the frame), it fades in linearly over the clip: the last frame is the
  last image, as the real model ends on it.
* With audio, a sine tone (frequency from ``seed``) of exactly the clip's duration is encoded as AAC.
* ``content`` renders a deliberately bad clip (the simulator's output faults, ``config.CONTENT_KINDS``):
  ``wrong_image`` animates a pattern unrelated to the input, ``frozen`` repeats the first frame, ``black``
  turns the second half black, ``silent`` makes the audio track silence.
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
from dataclasses import dataclass

from seedance_pipeline.simulator.model import FPS

# The output faults: a clip that plays and has the requested shape, but bad content (config.FaultKind).
CONTENT_FAULTS = ("wrong_image", "frozen", "black", "silent")

# How far the push-in goes: the last frame shows 1 / COVER of the first one's width and height.
COVER = 1.10
# x264 thread count is fixed so the bytes do not depend on the machine's CPU count
# (x264 records its settings, thread count included, in the stream).
_X264_THREADS = 2
_AUDIO_RATE = 48_000
_RENDER_VERSION = b"render-v2"  # bump when the output for the same inputs changes
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


def _cache_key(
    image_bytes: bytes,
    width: int,
    height: int,
    duration_s: int,
    audio: bool,
    seed: int,
    last_image: bytes | None,
    content: str | None,
) -> str:
    h = hashlib.sha256()
    h.update(_RENDER_VERSION + b"\0")
    h.update(f"{width}x{height}|{duration_s}|{int(bool(audio))}|{seed}|{content or ''}\0".encode())
    h.update(image_bytes)
    if last_image is not None:
        h.update(b"\0last\0" + last_image)
    return h.hexdigest()


def _unrelated_image(seed: int) -> bytes:
    """The ``wrong_image`` fault's input: diagonal stripes in two colours from ``seed``, like no real photo."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (256, 256), (40 + seed % 200, 200, 90))
    draw = ImageDraw.Draw(im)
    for x in range(-256, 256, 32):
        draw.polygon([(x, 0), (x + 16, 0), (x + 272, 256), (x + 256, 256)], fill=(230, 30 + seed % 200, 200))
    out = io.BytesIO()
    im.save(out, format="PNG")
    return out.getvalue()


def _decode_cover(image_bytes: bytes, width: int, height: int, cover: float = COVER) -> tuple[bytes, int, int]:
    """Decode the image and scale it to cover ``cover`` x (width, height); raw RGB24 bytes + size."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(image_bytes)) as im:
            im.seek(0)  # first frame of an animated GIF/WebP
            src_w, src_h = im.size
            if src_w <= 0 or src_h <= 0:
                raise RenderError(f"image has no pixels ({src_w}x{src_h})")
            need_w, need_h = width * cover, height * cover
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
            margin = 2 if cover > 1 else 0
            cw = max(width + margin, round(src_w * scale))
            ch = max(height + margin, round(src_h * scale))
            if (cw, ch) != (src_w, src_h):
                frame = frame.resize((cw, ch), Image.Resampling.BILINEAR, reducing_gap=3.0)
            return frame.tobytes(), cw, ch
    except RenderError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RenderError(f"cannot decode input image: {exc}") from exc


# Where the push-in heads (fractions of the margin, x and y), by seed % 4.
_TOWARDS = ((0.0, 0.0), (1.0, 0.5), (0.5, 1.0), (1.0, 1.0))


@dataclass(frozen=True)
class _Shot:
    width: int
    height: int
    duration_s: int
    audio: bool
    seed: int
    content: str | None  # one of CONTENT_FAULTS, or None for a good clip


def _video_graph(shot: _Shot, last: bool) -> str:
    n, d = FPS * shot.duration_s, float(shot.duration_s)
    fx, fy = _TOWARDS[shot.seed % 4]
    zoom = "1" if shot.content == "frozen" else f"1+{COVER - 1}*on/{n - 1}"
    graph = (
        f"[0:v]zoompan=z='{zoom}':x='(iw-iw/zoom)*{fx}':y='(ih-ih/zoom)*{fy}':d={n}:s={shot.width}x{shot.height}"
        f":fps={FPS},setpts=N/({FPS}*TB),format=yuv420p,setsar=1"
    )
    if last:  # the last image fades in linearly over the push-in, fully there on the last frame
        span = (n - 1) / FPS
        graph += (
            f"[pan];[1:v]format=yuva420p,loop=loop={n - 1}:size=1:start=0,setpts=N/({FPS}*TB),setsar=1,"
            f"fade=t=in:st=0:d={span}:alpha=1[end];[pan][end]overlay=format=yuv420:eof_action=pass"
        )
    if shot.content != "frozen":  # the subject: a dark box with a light core, crossing the frame
        side = max(4, min(shot.width, shot.height) // 6)
        graph += (
            f"[scene];color=c=0x202020:s={side}x{side}:r={FPS}:d={d},"
            f"drawbox=x={side // 4}:y={side // 4}:w={side // 2}:h={side // 2}:color=0xE0E0E0:t=fill[subject];"
            f"[scene][subject]overlay=x='(W-w)*t/{d}':y='H*0.6-h/2':eof_action=pass,format=yuv420p"
        )
    if shot.content == "black":
        graph += f",drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='gte(t,{d / 2})'"
    return graph + "[v]"


def _ffmpeg_args(shot: _Shot, cw: int, ch: int, last: bool, out_path: str) -> list[str]:
    """``cw`` x ``ch``: the first image, ``COVER`` x the frame; the last image (``last``) is the frame's size."""
    n = FPS * shot.duration_s
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-framerate", str(FPS)]
    args = [_ffmpeg(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
    args += [*raw, "-video_size", f"{cw}x{ch}", "-i", "pipe:0"]
    if last:
        args += [*raw, "-video_size", f"{shot.width}x{shot.height}", "-i", "pipe:3"]
    graph = _video_graph(shot, last)
    if shot.audio:
        freq = 220 + (shot.seed % 16) * 55  # 220..1045 Hz
        volume = 0 if shot.content == "silent" else 0.2
        graph += f";sine=frequency={freq}:sample_rate={_AUDIO_RATE}:duration={shot.duration_s},volume={volume}[a]"
    args += ["-filter_complex", graph, "-map", "[v]"]
    if shot.audio:
        args += ["-map", "[a]"]
    args += [
        "-frames:v", str(n), "-r", str(FPS), "-fps_mode", "cfr",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage", "-crf", "28",
        "-pix_fmt", "yuv420p", "-threads:v", str(_X264_THREADS),
        "-g", str(FPS * 2), "-x264-params", "scenecut=0",
    ]  # fmt: skip
    if shot.audio:
        args += ["-c:a", "aac", "-b:a", "64k", "-ac", "1", "-ar", str(_AUDIO_RATE), "-t", str(shot.duration_s)]
    else:
        args += ["-an"]
    args += [
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-map_metadata", "-1", "-map_chapters", "-1",
        "-movflags", "+faststart", "-f", "mp4", "-y", out_path,
    ]  # fmt: skip
    return args


def _run_ffmpeg(image_bytes: bytes, last_image: bytes | None, shot: _Shot, out_path: str) -> None:
    source = _unrelated_image(shot.seed) if shot.content == "wrong_image" else image_bytes
    cw, ch = round(shot.width * COVER) // 2 * 2, round(shot.height * COVER) // 2 * 2
    raw = _centre_crop(_decode_cover(source, shot.width, shot.height), cw, ch)
    last_raw = None
    if last_image is not None:
        last_raw = _centre_crop(_decode_cover(last_image, shot.width, shot.height, cover=1.0), shot.width, shot.height)
    args = _ffmpeg_args(shot, cw, ch, last_raw is not None, out_path)
    try:
        proc = _ffmpeg_with_inputs(args, raw, last_raw)
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"ffmpeg timed out after {_FFMPEG_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise RenderError(f"cannot run ffmpeg: {exc}") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
        raise RenderError(f"ffmpeg exited with status {proc.returncode}: {tail}")


def _centre_crop(decoded: tuple[bytes, int, int], width: int, height: int) -> bytes:
    raw, cw, ch = decoded
    x0, y0 = (cw - width) // 2, (ch - height) // 2
    row = cw * 3
    return b"".join(raw[(y0 + y) * row + x0 * 3 : (y0 + y) * row + (x0 + width) * 3] for y in range(height))


def _ffmpeg_with_inputs(args: list[str], first: bytes, last: bytes | None) -> subprocess.CompletedProcess:
    """ffmpeg with the first image on stdin and, when there is one, the last image on file descriptor 3."""
    if last is None:
        return subprocess.run(args, input=first, capture_output=True, timeout=_FFMPEG_TIMEOUT_S, check=False)
    with tempfile.TemporaryFile() as fh:
        fh.write(last)
        fh.seek(0)
        args = [a if a != "pipe:3" else f"/dev/fd/{fh.fileno()}" for a in args]
        return subprocess.run(
            args, input=first, capture_output=True, timeout=_FFMPEG_TIMEOUT_S, check=False, pass_fds=(fh.fileno(),)
        )


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
    *,
    last_image: bytes | None = None,
    content: str | None = None,
) -> bytes:
    """Render a ``duration_s`` s, 24 fps, ``width`` x ``height`` H.264 MP4 panning over the image (into
    ``last_image`` when given; ``content`` a deliberately bad clip, one of ``CONTENT_FAULTS``).

    Deterministic: the same arguments give the same bytes. With ``cache_dir``, the result is
    stored as ``<cache_dir>/<sha256>.mp4`` (written atomically) and reused on the next call.
    Raises :class:`RenderError` when the image cannot be decoded or ffmpeg fails.
    """
    _validate(width, height, duration_s, seed)
    if content is not None and content not in CONTENT_FAULTS:
        raise RenderError(f"content must be one of {', '.join(CONTENT_FAULTS)}, got {content!r}")
    image_bytes = bytes(image_bytes)
    last = None if last_image is None else bytes(last_image)
    shot = _Shot(width, height, duration_s, audio, seed, content)
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="seedance-render-") as tmp:
            out = os.path.join(tmp, "clip.mp4")
            _run_ffmpeg(image_bytes, last, shot, out)
            with open(out, "rb") as f:
                return f.read()

    cache_dir = pathlib.Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / f"{_cache_key(image_bytes, width, height, duration_s, audio, seed, last, content)}.mp4"
    try:
        return final.read_bytes()
    except FileNotFoundError:
        pass
    fd, tmp_path = tempfile.mkstemp(prefix=f".{final.stem[:16]}-", suffix=".mp4.tmp", dir=cache_dir)
    os.close(fd)
    try:
        _run_ffmpeg(image_bytes, last, shot, tmp_path)
        with open(tmp_path, "rb") as f:
            data = f.read()
        os.replace(tmp_path, final)  # atomic; concurrent renderers write identical bytes
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise
    return data
