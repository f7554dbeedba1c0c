"""Real simulator renders (ffmpeg) probed for real (PyAV): no mocks, no binary fixtures."""

from __future__ import annotations

import io
import os
import threading

import av
import pytest
from PIL import Image

from seedance_pipeline.clip.probe import VideoProbe, VideoProbeError, probe_video
from seedance_pipeline.core import model_spec
from seedance_pipeline.core.mp4 import looks_like_mp4
from seedance_pipeline.simulator import render
from seedance_pipeline.simulator.render import RenderError, render_clip

FRAME_S = 1 / model_spec.FPS


def _image_bytes(size=(640, 480), fmt="JPEG", color=None, mode="RGB") -> bytes:
    """A test still: a solid colour, or a gradient with a few shapes (so a pan is visible)."""
    if color is not None:
        im = Image.new(mode, size, color)
    else:
        w, h = size
        grad = Image.linear_gradient("L").resize(size)
        cross = grad.transpose(Image.Transpose.ROTATE_90).resize(size)
        im = Image.merge("RGB", (grad, cross, Image.new("L", size, 90)))
        for i in range(6):
            im.paste((255 - 40 * i, 40 * i, 128), (i * w // 7, i * h // 7, i * w // 7 + w // 10, i * h // 7 + h // 10))
        if mode != "RGB":
            im = im.convert(mode)
    out = io.BytesIO()
    im.save(out, format=fmt)
    return out.getvalue()


def _decode_frames(data: bytes, indices: set[int]) -> dict[int, Image.Image]:
    got = {}
    with av.open(io.BytesIO(data)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in indices:
                got[i] = frame.to_image()
            if len(got) == len(indices):
                break
    return got


def _mean_rgb(im: Image.Image) -> tuple[float, float, float]:
    from PIL import ImageStat

    r, g, b = ImageStat.Stat(im.convert("RGB")).mean
    return r, g, b


@pytest.fixture(scope="module")
def photo() -> bytes:
    return _image_bytes()


CASES = [
    ("16:9", "480p", 4, False),
    ("9:16", "480p", 5, True),
    ("1:1", "480p", 4, True),
    ("21:9", "480p", 5, False),
    ("4:3", "720p", 5, True),
    ("3:4", "480p", 12, True),
]


@pytest.mark.parametrize(("ratio", "resolution", "duration", "audio"), CASES)
def test_render_matches_spec(photo, ratio, resolution, duration, audio):
    width, height = model_spec.PIXEL_SIZES[(ratio, resolution)]
    data = render_clip(photo, width, height, duration, audio, seed=11)
    assert looks_like_mp4(data[:64])
    # faststart: the moov box comes before mdat
    assert 0 <= data.find(b"moov") < data.find(b"mdat")

    p = probe_video(data)
    assert isinstance(p, VideoProbe)
    assert (p.width, p.height) == (width, height)
    assert p.fps == model_spec.FPS
    assert p.frames == model_spec.frame_count(duration)
    assert abs(p.duration_s - duration) <= FRAME_S
    assert p.video_codec == "h264"
    assert p.decoded_to_end is True
    assert p.size_bytes == len(data)
    assert p.has_audio is audio
    if audio:
        assert p.audio_codec == "aac"
        assert p.audio_duration_s is not None and abs(p.audio_duration_s - duration) <= FRAME_S
    else:
        assert p.audio_codec is None and p.audio_duration_s is None


def test_render_pixel_format_is_yuv420p(photo):
    data = render_clip(photo, 640, 640, 4, False, seed=0)
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert c.streams.video[0].codec_context.profile is not None


def test_render_is_deterministic(photo):
    a = render_clip(photo, 864, 496, 4, True, seed=3)
    b = render_clip(photo, 864, 496, 4, True, seed=3)
    assert a == b
    c = render_clip(photo, 864, 496, 4, True, seed=4)
    assert c != a
    a_silent = render_clip(photo, 864, 496, 4, False, seed=3)
    assert a_silent == render_clip(photo, 864, 496, 4, False, seed=3)
    assert a_silent != a


@pytest.mark.parametrize(("color", "dominant"), [((230, 20, 20), 0), ((20, 20, 230), 2)])
def test_first_frame_comes_from_the_image(color, dominant):
    data = render_clip(_image_bytes(color=color, fmt="PNG"), 864, 496, 4, False, seed=1)
    frames = _decode_frames(data, {0})
    mean = _mean_rgb(frames[0])
    others = [mean[i] for i in range(3) if i != dominant]
    assert mean[dominant] > 150 and all(mean[dominant] > o + 100 for o in others), mean

    thumb = Image.open(io.BytesIO(probe_video(data, preview_width=320).preview_jpeg))
    assert thumb.format == "JPEG"
    assert thumb.width == 320 and abs(thumb.height - round(320 * 496 / 864)) <= 1
    tmean = _mean_rgb(thumb)
    assert all(tmean[dominant] > tmean[i] + 100 for i in range(3) if i != dominant), tmean


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_frames_push_in_on_the_image(photo, seed):
    n = model_spec.frame_count(4)
    data = render_clip(photo, 560, 752, 4, False, seed=seed)
    frames = _decode_frames(data, {0, n - 1})
    from PIL import ImageChops, ImageStat

    diff = ImageStat.Stat(ImageChops.difference(frames[0].convert("L"), frames[n - 1].convert("L"))).mean[0]
    assert diff > 2, f"the last frame should differ from the first (push-in), mean abs diff {diff}"


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("PNG", "RGBA"), ("PNG", "L"), ("WEBP", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"), ("JPEG", "CMYK")],
)
def test_render_accepts_image_formats(fmt, mode):
    data = render_clip(_image_bytes(size=(300, 200), fmt=fmt, mode=mode), 96, 64, 1, False, seed=5)
    p = probe_video(data)
    assert (p.width, p.height, p.frames, p.decoded_to_end) == (96, 64, 24, True)


def test_render_errors():
    with pytest.raises(RenderError, match="cannot decode"):
        render_clip(b"<html>not an image</html>", 864, 496, 4, False, seed=0)
    with pytest.raises(RenderError, match="even"):
        render_clip(_image_bytes(), 865, 496, 4, False, seed=0)
    with pytest.raises(RenderError):
        render_clip(_image_bytes(), 864, 496, 0, False, seed=0)


def test_truncated_mp4_is_not_decoded_to_end(photo):
    data = render_clip(photo, 864, 496, 4, True, seed=2)
    half = data[: len(data) // 2]
    try:
        p = probe_video(half)
    except VideoProbeError:
        pass
    else:
        assert p.decoded_to_end is False
        assert p.frames < model_spec.frame_count(4)
    # A missing tail (last packets cut off) is also caught.
    p = probe_video(data[:-500])
    assert p.decoded_to_end is False
    # Not a container at all.
    with pytest.raises(VideoProbeError):
        probe_video(b"<html><body>502 Bad Gateway</body></html>")
    with pytest.raises(VideoProbeError):
        probe_video(data[:200])


def test_looks_like_mp4(photo):
    assert not looks_like_mp4(b"<html><head></head><body>error</body></html>")
    assert not looks_like_mp4(b"")
    assert not looks_like_mp4(b"\x00\x00\x00\x18ftx")
    assert not looks_like_mp4(_image_bytes(fmt="PNG")[:64])
    assert not looks_like_mp4(b'{"error": "ftyp"}')
    data = render_clip(photo, 640, 640, 4, False, seed=0)
    assert looks_like_mp4(data[:16])
    assert looks_like_mp4(data)


def test_probe_sources(photo, tmp_path):
    data = render_clip(photo, 864, 496, 4, True, seed=9)
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    expected = probe_video(data)
    assert probe_video(path) == expected
    assert probe_video(str(path)) == expected
    with open(path, "rb") as f:
        f.seek(10)
        assert probe_video(f) == expected
        assert f.tell() == 10  # position restored
    fsspec = pytest.importorskip("fsspec")
    with fsspec.open(f"file://{path}", "rb") as f:
        assert probe_video(f) == expected
    with pytest.raises(VideoProbeError):
        probe_video(tmp_path / "missing.mp4")
    with pytest.raises(TypeError):
        probe_video(12345)  # type: ignore[arg-type]
    preview = probe_video(path, preview_width=100)
    assert preview.decoded_to_end and Image.open(io.BytesIO(preview.preview_jpeg)).width == 100
    assert probe_video(path, preview_width=5000).preview_jpeg is not None  # never scaled up
    assert Image.open(io.BytesIO(probe_video(path, preview_width=5000).preview_jpeg)).width == expected.width


def test_cache_dir_reuses_the_render(photo, tmp_path, monkeypatch):
    calls = []
    real_run = render._run_ffmpeg

    def counting_run(*args, **kwargs):
        calls.append(args[1:6])
        return real_run(*args, **kwargs)

    monkeypatch.setattr(render, "_run_ffmpeg", counting_run)
    cache = tmp_path / "cache"
    first = render_clip(photo, 864, 496, 4, True, seed=1, cache_dir=cache)
    files = sorted(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".mp4"
    mtime = files[0].stat().st_mtime_ns
    second = render_clip(photo, 864, 496, 4, True, seed=1, cache_dir=cache)
    assert second == first
    assert len(calls) == 1
    assert sorted(cache.iterdir()) == files and files[0].stat().st_mtime_ns == mtime
    # Any parameter change is a different entry; the cached bytes equal an uncached render.
    render_clip(photo, 864, 496, 4, True, seed=2, cache_dir=cache)
    assert len(calls) == 2 and len(list(cache.iterdir())) == 2
    monkeypatch.setattr(render, "_run_ffmpeg", real_run)
    assert render_clip(photo, 864, 496, 4, True, seed=1) == first


def test_cache_dir_concurrent_callers(tmp_path):
    image = _image_bytes(size=(200, 100))
    cache = tmp_path / "cache"
    results: list[bytes] = []
    errors: list[BaseException] = []

    def work():
        try:
            results.append(render_clip(image, 160, 96, 1, True, seed=7, cache_dir=cache))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 4 and len(set(results)) == 1
    names = os.listdir(cache)
    assert len(names) == 1 and names[0].endswith(".mp4"), names  # no temp files left behind
    assert probe_video(cache / names[0]).decoded_to_end
