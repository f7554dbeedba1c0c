"""A real S3 endpoint on loopback for tests: moto's server mode in a thread of the test process.

moto keeps its buckets in process-wide state, so every test works in a bucket of its own (a fresh
name per test); each module starts its own server on 127.0.0.1, port 0, and stops it afterwards.
Credentials are dummies set per test, and nothing from the machine's AWS config is read.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import pytest

from seedance_pipeline.storage.resource import SeedanceStorage

DUMMY_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
CLEARED_ENV = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
)


@contextmanager
def dummy_aws_environ() -> Iterator[None]:
    """This process's environment with dummy credentials for a local S3 server and none of the machine's
    AWS settings, restored afterwards (for code outside pytest's monkeypatch: the campaign, benchmarks)."""
    names = (*CLEARED_ENV, *DUMMY_ENV, "AWS_EC2_METADATA_DISABLED")
    saved = {k: os.environ.get(k) for k in names}
    for k in CLEARED_ENV:
        os.environ.pop(k, None)
    os.environ.update({**DUMMY_ENV, "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's S3 (any service, in fact) on 127.0.0.1:<free port>; yield its http URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def aws_env(monkeypatch, tmp_path) -> None:
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def s3(s3_endpoint, aws_env):
    """A boto3 client on the endpoint: an independent view of (and writer to) the bucket."""
    return boto3.client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def bucket(s3) -> str:
    name = f"seedance-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_storage(s3_endpoint, bucket) -> SeedanceStorage:
    return SeedanceStorage(url=f"s3://{bucket}/team/storage", endpoint_url=s3_endpoint)


def object_keys(s3, bucket: str, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys
