"""An S3-compatible server on loopback for the object-storage tests (`tests/s3server.py`)."""

from __future__ import annotations

import re

import pytest


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 (atomic writes, as S3's) and the AWS env pointing at it;
    yields an s3fs filesystem on it."""
    s3fs = pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from tests.s3server import moto_s3

    with moto_s3():
        yield s3fs.S3FileSystem(skip_instance_cache=True)


@pytest.fixture
def bucket(s3, request):
    """A new bucket named after the test."""
    name = "b-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    s3.mkdir(name)
    return name
