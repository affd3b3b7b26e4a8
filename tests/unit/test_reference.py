"""Tests for layers/reference.py: Docker's normalisation of image references."""

import pytest

from layers import reference
from layers.reference import Reference
from rootless.base.errors import UsageError

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("ref, registry, path, tag, digest, full", [
    ("busybox", "docker.io", "library/busybox", "latest", None, "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "docker.io/library/busybox:1.36"),
    ("user/app", "docker.io", "user/app", "latest", None, "docker.io/user/app:latest"),
    ("docker.io/library/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
    ("localhost:5000/a/b:tag", "localhost:5000", "a/b", "tag", None, "localhost:5000/a/b:tag"),
    ("host.example.com/x", "host.example.com", "x", "latest", None, "host.example.com/x:latest"),
    ("a/b/c_d.e-f__g", "docker.io", "a/b/c_d.e-f__g", "latest", None, "docker.io/a/b/c_d.e-f__g:latest"),
    (f"name@{DIGEST}", "docker.io", "library/name", None, DIGEST, f"docker.io/library/name@{DIGEST}"),
    (f"name:tag@{DIGEST}", "docker.io", "library/name", "tag", DIGEST,
     f"docker.io/library/name:tag@{DIGEST}"),
    ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None, "[::1]:5000/x:y"),
    ("[fe80::1]/x", "[fe80::1]", "x", "latest", None, "[fe80::1]/x:latest"),
])
def test_parse_valid(ref, registry, path, tag, digest, full):
    r = reference.parse(ref)
    assert r == Reference(registry, path, tag, digest)
    assert str(r) == full
    assert r.repository == f"{registry}/{path}"


@pytest.mark.parametrize("ref", [
    "busybox", "busybox:latest", "docker.io/library/busybox:latest", "user/app:1", "localhost:5000/a/b:tag",
])
def test_parse_is_idempotent(ref):
    once = reference.parse(ref)
    assert reference.parse(str(once)) == once


@pytest.mark.parametrize("ref, familiar", [
    ("busybox", "busybox"),
    ("docker.io/library/busybox:1", "busybox"),
    ("user/app", "user/app"),
    ("localhost:5000/x", "localhost:5000/x"),
    ("host.example.com/a/b", "host.example.com/a/b"),
])
def test_familiar_repository(ref, familiar):
    assert reference.parse(ref).familiar_repository == familiar


@pytest.mark.parametrize("ref", [
    "",
    "Busybox",  # uppercase repository
    "user/App",
    "busybox ",  # trailing space
    " busybox",
    "a//b",
    "busybox:",  # empty tag
    "busybox:-bad",  # a tag cannot start with "-"
    "busybox:" + "t" * 129,  # tag too long
    "busybox@sha256:abc",  # short digest
    "busybox@md5:" + "0" * 32,
    "busybox@sha256:" + "A" * 64,  # uppercase hex
    "busybox@",
    "-leading/dash",
    "trailing-/x",
    "bad_host_/x",
])
def test_parse_invalid(ref):
    with pytest.raises(UsageError, match="invalid reference format"):
        reference.parse(ref)


@pytest.mark.parametrize("text, search, expected", [
    ("busybox", ("docker.io",), ["docker.io/library/busybox:latest"]),
    ("busybox", ("h:5000", "docker.io"), ["h:5000/busybox:latest", "docker.io/library/busybox:latest"]),
    ("user/app:1", ("h.example", "docker.io"), ["h.example/user/app:1", "docker.io/user/app:1"]),
    ("busybox@sha256:" + "a" * 64, ("h:1",), ["h:1/busybox@sha256:" + "a" * 64]),
    ("h:1/busybox", ("docker.io", "x.example"), ["h:1/busybox:latest"]),  # not short: itself only
    ("localhost/a", ("x.example",), ["localhost/a:latest"]),
    ("busybox", (), ["docker.io/library/busybox:latest"]),
])
def test_short_name_candidates(text, search, expected):
    assert [str(r) for r in reference.candidates(text, search)] == expected


def test_candidates_keep_the_names_own_error():
    with pytest.raises(UsageError, match="invalid reference format"):
        reference.candidates("Bad", ("h:1",))
