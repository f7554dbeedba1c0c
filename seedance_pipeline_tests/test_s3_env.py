"""Production storage configured the way the README's "Running in production" says: environment only.

SEEDANCE_STORAGE_URL=s3://bucket/prefix, SEEDANCE_S3_ENDPOINT_URL for an S3-compatible store, and the
standard AWS variables for credentials; the code location's storage resource picks them up, talks to a real
S3-protocol server (moto on loopback) and presigns image URLs that expire after an hour.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from seedance_pipeline.core import settings
from seedance_pipeline.definitions import build_definitions
from seedance_pipeline_tests.s3server import object_keys


def test_storage_from_the_environment_on_s3(monkeypatch, s3_endpoint, s3, bucket):
    monkeypatch.setenv(settings.STORAGE_URL.name, f"s3://{bucket}/prod")
    monkeypatch.setenv(settings.S3_ENDPOINT_URL.name, s3_endpoint)
    storage = build_definitions().resources["storage"]  # what the code location loads
    assert storage.url == f"s3://{bucket}/prod" and storage.endpoint_url == s3_endpoint

    path = storage.path("images", "cat.png")
    storage.write_bytes(path, b"\x89PNG-not-really")
    assert object_keys(s3, bucket) == {"prod/images/cat.png"}
    assert storage.read_bytes(path) == b"\x89PNG-not-really"

    url = storage.presign(storage.ref(path))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == s3_endpoint and parts.path == f"/{bucket}/prod/images/cat.png"
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["3600"]
    assert query["X-Amz-Credential"][0].startswith("testing/")  # the key id from AWS_ACCESS_KEY_ID
    # A URL-only provider fetches it without credentials of its own.
    with httpx.Client(trust_env=False) as client:
        assert client.get(url).content == b"\x89PNG-not-really"
