"""Validation before spending: each rule's error names field, value, provider and rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from seedance_pipeline import pricing
from seedance_pipeline.clip.prepare import build_request, prepare
from seedance_pipeline.core.errors import InvalidRequest
from seedance_pipeline.providers import PROVIDERS, get_adapter
from seedance_pipeline.providers.engine import parse_retry_after


def write_image(path, size=(800, 450), fmt="PNG", color=(200, 120, 40)):
    Image.new("RGB", size, color).save(path, format=fmt)
    return str(path)


@pytest.fixture
def image(tmp_path):
    return write_image(tmp_path / "img.png")


def rejects(provider, image, **fields):
    req = build_request(prompt="a slow pan", image=image, **fields)
    with pytest.raises(InvalidRequest) as info:
        prepare(get_adapter(provider), req)
    return info.value


@pytest.mark.parametrize("provider", ["runpod", "wavespeed"])
def test_no_1080p_on_runpod_and_wavespeed(provider, image):
    err = rejects(provider, image, resolution="1080p")
    assert (err.field, err.value, err.provider) == ("resolution", "1080p", provider)
    assert "480p, 720p" in str(err)


@pytest.mark.parametrize("duration", [3, 13])
def test_duration_range(duration, image):
    err = rejects("novita", image, duration=duration)
    assert err.field == "duration" and err.value == duration and "4 to 12" in err.rule


@pytest.mark.parametrize(
    "provider,limit", [("wavespeed", 2147483647), ("jiekou", 4294967295), ("novita", 4294967295), ("vibedream", 1000)]
)
def test_seed_ranges(provider, limit, image, tmp_path):
    err = rejects(provider, image, seed=limit + 1)
    assert err.field == "seed" and str(limit) in err.rule
    if provider not in ("runpod", "wavespeed", "vibedream"):  # data-URI providers prepare without presigning
        prepare(get_adapter(provider), build_request(prompt="p", image=image, seed=limit))


def test_auto_is_not_our_word_for_adaptive(image):
    with pytest.raises(InvalidRequest) as info:
        build_request(prompt="p", image=image, aspect_ratio="auto")
    assert info.value.field == "aspect_ratio" and "adaptive" in info.value.rule


def test_wrong_type_names_the_field(image):
    with pytest.raises(InvalidRequest) as info:
        build_request(prompt="p", image=image, duration="five")
    assert info.value.field == "duration" and info.value.value == "five"


@pytest.mark.parametrize(
    "size,needle",
    [
        ((299, 400), "width is 299"),
        ((400, 6001), "height is 6001"),
        ((1000, 320), "aspect"),
        ((320, 820), "aspect"),
        # Open ranges (docs/providers.md §2.5): the bounds themselves are refused.
        ((300, 400), "width is 300 px; each side must be more than 300"),
        ((6000, 4000), "width is 6000 px; each side must be more than 300 and less than 6000"),
        ((1000, 400), "aspect (width/height) is 2.500"),
        ((400, 1000), "aspect (width/height) is 0.400"),
    ],
)
def test_image_sides_and_aspect(size, needle, tmp_path):
    err = rejects("jiekou", write_image(tmp_path / "x.png", size=size))
    assert err.field == "image" and needle in err.rule


@pytest.mark.parametrize("size", [(301, 400), (5999, 4000), (999, 400), (400, 999)])
def test_images_just_inside_the_open_ranges_are_accepted(size, tmp_path):
    prepare(get_adapter("jiekou"), build_request(prompt="p", image=write_image(tmp_path / "x.png", size=size)))


def test_wavespeed_takes_images_of_at_most_20_mb_where_the_others_take_under_30(tmp_path):
    path = tmp_path / "noisy.png"
    # 21 MB of PNG that still decodes: random pixels do not compress.
    Image.frombytes("RGB", (2700, 2700), os.urandom(2700 * 2700 * 3)).save(path, format="PNG", compress_level=0)
    assert 20 * 2**20 < path.stat().st_size < 30 * 2**20
    err = rejects("wavespeed", str(path))
    assert "WaveSpeed accepts image files of at most 20 MB" in err.rule
    prepare(get_adapter("novita"), build_request(prompt="p", image=str(path)))


def test_png_renamed_jpg(tmp_path):
    err = rejects("novita", write_image(tmp_path / "photo.jpg", fmt="PNG"))
    assert "says JPEG but the content is PNG" in err.rule


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello")
    assert "not a readable image" in rejects("novita", str(p)).rule


def test_file_of_31_mb_is_rejected_without_reading(tmp_path):
    p = tmp_path / "big.png"
    with open(p, "wb") as fh:
        fh.truncate(31 * 1024 * 1024)
    assert "30 MB" in rejects("novita", str(p)).rule


def test_vibedream_rejects_bmp(tmp_path):
    err = rejects("vibedream", write_image(tmp_path / "x.bmp", fmt="BMP"))
    assert "BMP is not accepted" in err.rule


@pytest.mark.parametrize("provider", ["runpod", "wavespeed", "vibedream"])
def test_url_only_provider_needs_url_for_local_file(provider, image):
    err = rejects(provider, image)
    assert err.field == "image" and "only as URLs" in err.rule


@pytest.mark.parametrize("provider", ["runpod", "wavespeed", "vibedream"])
def test_flex_only_where_it_exists(provider, image):
    assert rejects(provider, image, service_tier="flex").field == "service_tier"


def test_adaptive_resolves_locally_for_runpod(image):
    prepared = prepare(
        get_adapter("runpod"),
        build_request(prompt="p", image=image, resolution="480p"),
        presign=lambda ref: "https://bucket.example/img.png?sig=1",
    )
    assert prepared.aspect_ratio_sent == "16:9"  # 800x450
    assert prepared.wire.json["input"]["aspect_ratio"] == "16:9"
    assert (prepared.width, prepared.height) == (864, 496)
    assert prepared.image_wire_kind == "presigned-url"


def test_data_uri_for_novita_and_fingerprint_is_stable(image):
    a = prepare(get_adapter("novita"), build_request(prompt="p", image=image))
    b = prepare(get_adapter("novita"), build_request(prompt="p", image=image))
    c = prepare(get_adapter("novita"), build_request(prompt="p", image=image, seed=7))
    assert a.wire.json["image"].startswith("data:image/png;base64,")
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.image_wire_kind == "data-uri"


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"seed": 7, "resolution": "1080p", "aspect_ratio": "9:16", "generate_audio": True, "camera_fixed": True},
        {"service_tier": "flex", "execution_expires_after": 7200, "duration": 12, "prompt": 'quote " and ünïcode'},
    ],
)
def test_fingerprint_is_the_sha256_of_the_documented_document(image, tmp_path, fields):
    # docs/architecture.md: sha256 of the sorted, compact JSON of model, provider, request fields and image hashes.
    import hashlib
    import json

    last = write_image(tmp_path / "last.png", color=(1, 2, 3))
    for last_image in (None, last):
        req = build_request(**{"prompt": "p", "image": image, "last_image": last_image, **fields})
        prepared = prepare(get_adapter("novita"), req)
        doc = {
            "model": "seedance-1.5-pro-i2v",
            "provider": "novita",
            "request": req.model_dump(exclude={"image", "last_image"}),
            "image": hashlib.sha256(Path(image).read_bytes()).hexdigest(),
            "last_image": hashlib.sha256(Path(last).read_bytes()).hexdigest() if last_image else None,
        }
        expected = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        assert prepared.fingerprint == expected


def test_long_prompt_warns(image):
    prepared = prepare(get_adapter("novita"), build_request(prompt="x" * 501, image=image))
    assert any("501 characters" in w for w in prepared.warnings)


def test_runpod_price_matches_the_documented_example():
    # docs/providers.md §3.8: "a 5-second 720p video costs $0.26"
    est = pricing.estimate("runpod", resolution="720p", duration_s=5, generate_audio=False, width=1280, height=720)
    assert est.usd == pytest.approx(0.26) and not est.assumption


def test_flex_is_half_price_and_unknown_prices_are_assumptions():
    kw = dict(resolution="720p", duration_s=5, generate_audio=True, width=1280, height=720)
    online = pricing.estimate("novita", **kw)
    flex = pricing.estimate("novita", service_tier="flex", **kw)
    assert flex.usd == pytest.approx(online.usd / 2) and online.assumption
    assert all(pricing.price_table().providers[p].source for p in PROVIDERS)


def test_price_override_file(tmp_path, monkeypatch):
    f = tmp_path / "prices.yaml"
    f.write_text(
        "providers:\n  runpod:\n    unit: usd_per_second\n    assumption: false\n    source: contract\n"
        "    rates:\n      - {resolution: 480p, usd: 0.02}\n      - {resolution: 720p, usd: 0.04}\n"
    )
    monkeypatch.setenv(pricing.settings.PRICES_FILE.name, str(f))
    assert pricing.estimate(
        "runpod", resolution="720p", duration_s=5, generate_audio=False, width=1, height=1
    ).usd == pytest.approx(0.2)


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
