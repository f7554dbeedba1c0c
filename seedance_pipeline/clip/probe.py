"""Probing stored MP4 clips with PyAV: duration, fps, size, streams, and a full decode.

``probe_video`` decodes every video frame (so a truncated or corrupt file shows up as
``decoded_to_end=False``) and demuxes, without decoding, the audio packets to measure the
audio duration. On request it also returns a small JPEG of the first frame, scaled by FFmpeg from
the frame it decoded anyway, and feeds every frame (audio frames decoded too) to a
``content.ContentSampler`` for the content checks. What that costs per clip: benchmarks/README.md,
"Measurements behind the code", M4, and docs/checks.md.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Any

from seedance_pipeline.clip.content import ContentSample, ContentSampler

VideoSource = bytes | bytearray | memoryview | str | os.PathLike | IO[bytes]

# Demuxed audio may fall short of the declared (edit-list) duration by less than one AAC frame.
_AUDIO_SLACK_S = 0.05


class VideoProbeError(Exception):
    """The source cannot be opened as a video container, or has no video stream."""


@dataclass(frozen=True)
class VideoProbe:
    duration_s: float  # the video stream's declared duration (container's if the stream has none)
    fps: float  # the video stream's average frame rate
    width: int
    height: int
    frames: int  # video frames actually decoded
    video_codec: str
    has_audio: bool
    audio_codec: str | None
    audio_duration_s: float | None  # from the audio packets actually demuxed (None without audio)
    size_bytes: int
    decoded_to_end: bool  # every frame decoded without error, as many as the container declares
    preview_jpeg: bytes | None = None  # the first frame, scaled down (``preview_width``), as a JPEG
    content: ContentSample | None = None  # with ``sample_content``: what the frames and the audio show


class _Opened:
    """Opens a source for PyAV; remembers its size; restores/cleans up on exit."""

    def __init__(self, source: Any):
        self._close_file: IO[bytes] | None = None
        self._restore_pos: int | None = None
        self._fileobj: IO[bytes] | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            self.size = len(data)
            self.target: Any = io.BytesIO(data)
        elif isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            try:
                self.size = os.path.getsize(path)
            except OSError as exc:
                raise VideoProbeError(f"cannot read {path!r}: {exc}") from exc
            self.target = path
        elif hasattr(source, "read") and hasattr(source, "seek"):
            self._fileobj = source
            try:
                self._restore_pos = source.tell()
            except (OSError, AttributeError, ValueError):
                self._restore_pos = None
            try:
                source.seek(0, io.SEEK_END)
                self.size = source.tell()
                source.seek(0)
            except (OSError, ValueError) as exc:
                raise VideoProbeError(f"source file object is not seekable: {exc}") from exc
            self.target = source
        else:
            raise TypeError(f"cannot probe a {type(source).__name__}: pass bytes, a path or a binary file object")

    def __enter__(self) -> _Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fileobj is not None and self._restore_pos is not None:
            with contextlib.suppress(OSError, ValueError):
                self._fileobj.seek(self._restore_pos)


def _open_container(target: Any) -> Any:
    # PyAV is imported where a clip is opened (here, _probe_container and poster_jpeg): a process that opens none
    # (forecast, backfill, the sensors) is spared its 22 MB and 0.14 s.
    import av

    try:
        return av.open(target, mode="r")
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise VideoProbeError(f"cannot open as a video container: {exc}") from exc


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def probe_video(source: VideoSource, *, preview_width: int | None = None, sample_content: bool = False) -> VideoProbe:
    """Probe a video: bytes, a path, or a seekable binary file object (e.g. from ``fsspec.open``).

    Every video frame is decoded. Raises :class:`VideoProbeError` when the container cannot be
    opened or has no video stream; a file that opens but breaks off or is corrupt part-way gives
    ``decoded_to_end=False``. With ``preview_width``, ``preview_jpeg`` is the first frame scaled down
    (aspect kept) to at most that width. With ``sample_content``, ``content`` holds the figures of
    ``content.ContentSampler`` (the audio is then decoded as well as demuxed).
    """
    if preview_width is not None and preview_width < 1:
        raise ValueError(f"preview_width must be >= 1, got {preview_width}")
    with _Opened(source) as opened:
        container = _open_container(opened.target)
        try:
            sampler = ContentSampler() if sample_content else None
            return _probe_container(container, opened.size, preview_width, sampler)
        finally:
            container.close()


def _probe_container(
    container: Any, size_bytes: int, preview_width: int | None, sampler: ContentSampler | None
) -> VideoProbe:
    import av

    if not container.streams.video:
        raise VideoProbeError("no video stream")
    vstream = container.streams.video[0]
    # One decoder thread: the pipeline probes many clips at once (one per worker thread), and FFmpeg's
    # frame/slice threads cost more CPU than they save on short clips (benchmarks/README.md, M4).
    vstream.codec_context.thread_count = 1
    astream = container.streams.audio[0] if container.streams.audio else None

    vctx = vstream.codec_context
    width, height = vctx.width, vctx.height
    rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
    fps = float(rate) if rate else 0.0
    declared_frames = vstream.frames or 0

    duration = _seconds(vstream.duration, vstream.time_base)
    if duration is None and container.duration is not None:
        duration = container.duration / av.time_base

    frames = 0
    preview = None
    errored = False
    audio_start: int | None = None
    audio_end: int | None = None
    streams = [vstream] + ([astream] if astream is not None else [])
    try:
        for packet in container.demux(streams):
            if packet.stream is vstream:
                for frame in packet.decode():  # a None-size flush packet drains the decoder at the end
                    frames += 1
                    if sampler is not None:
                        sampler.video(frame)
                    if frames == 1:
                        width, height = frame.width, frame.height
                        if preview_width is not None:
                            preview = _preview_jpeg(frame, preview_width)
            elif packet.pts is not None:
                start = packet.pts
                end = packet.pts + (packet.duration or 0)
                audio_start = start if audio_start is None else min(audio_start, start)
                audio_end = end if audio_end is None else max(audio_end, end)
                if sampler is not None and sampler.wants_audio_packet():
                    for audio_frame in packet.decode():
                        sampler.audio(audio_frame)
    except (av.FFmpegError, EOFError, OSError, ValueError):
        errored = True

    if duration is None and fps:
        duration = frames / fps

    audio_duration = None
    audio_complete = True
    if astream is not None:
        declared_audio = _seconds(astream.duration, astream.time_base)
        demuxed = None
        if audio_start is not None and audio_end is not None:
            demuxed = float((audio_end - max(audio_start, 0)) * astream.time_base)
        # The declared duration honours the edit list (AAC priming trimmed); report it only when
        # the packets actually reached it, else report what could be demuxed.
        if declared_audio is not None and demuxed is not None and demuxed + _AUDIO_SLACK_S >= declared_audio:
            audio_duration = declared_audio
        else:
            audio_duration = demuxed if demuxed is not None else (0.0 if declared_audio else None)
            audio_complete = declared_audio is None
    decoded_to_end = (
        not errored and audio_complete and frames > 0 and (declared_frames == 0 or frames >= declared_frames)
    )
    if decoded_to_end and declared_frames == 0 and duration and fps:
        decoded_to_end = frames >= round(duration * fps) - 1

    return VideoProbe(
        duration_s=float(duration or 0.0),
        fps=fps,
        width=int(width),
        height=int(height),
        frames=frames,
        video_codec=vctx.name,
        has_audio=astream is not None,
        audio_codec=astream.codec_context.name if astream is not None else None,
        audio_duration_s=audio_duration,
        size_bytes=size_bytes,
        decoded_to_end=decoded_to_end,
        preview_jpeg=preview,
        content=sampler.finish() if sampler is not None else None,
    )


def _preview_jpeg(frame: Any, max_width: int) -> bytes:
    """``frame`` scaled by FFmpeg (swscale, bilinear) to at most ``max_width`` wide, as a JPEG.

    JPEG, not PNG: a video frame is a photograph, and the preview is stored base64 in every clip's
    materialization event: a JPEG is several times smaller and cheaper to encode (benchmarks/README.md, M5)."""
    width = min(max_width, frame.width)
    height = max(1, round(frame.height * width / frame.width))
    # One scaling thread (content._thumb says why).
    scaled = frame.reformat(width=width, height=height, format="rgb24", interpolation="BILINEAR", threads=1)
    image = scaled.to_image()
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def poster_jpeg(source: VideoSource, *, max_width: int = 320) -> bytes:
    """The first frame as a JPEG at most ``max_width`` wide: one frame decoded, not the clip."""
    import av

    with _Opened(source) as opened:
        container = _open_container(opened.target)
        try:
            if not container.streams.video:
                raise VideoProbeError("no video stream")
            for frame in container.decode(video=0):
                return _preview_jpeg(frame, max_width)
            raise VideoProbeError("no video frame")
        except av.FFmpegError as exc:
            raise VideoProbeError(f"cannot decode the first frame: {exc}") from exc
        finally:
            container.close()
