"""Tests for the registry client's pure parts: manifests and platforms, challenges, credentials, config."""

import json
import os
import stat

import pytest

from layers import auth, manifest
from layers.registry import _parse_challenge
from rootless.base import config
from rootless.base.errors import InvalidImage, RootlessError, UsageError

D = "sha256:" + "a" * 64
E = "sha256:" + "b" * 64


def desc(digest=D, size=10, mt=manifest.OCI_LAYER_GZIP, **kw):
    return dict({"mediaType": mt, "digest": digest, "size": size}, **kw)


def test_parse_manifest_and_parts():
    doc = {"schemaVersion": 2, "mediaType": manifest.OCI_MANIFEST, "config": desc(E, 5, manifest.OCI_CONFIG),
           "layers": [desc(), desc(E, 3, manifest.DOCKER_LAYER_TAR)]}
    mt, parsed = manifest.parse(json.dumps(doc).encode())
    assert mt == manifest.OCI_MANIFEST
    config, layers = manifest.image_parts(parsed, "x")
    assert config.digest == E and [lr.size for lr in layers] == [10, 3]


def test_media_type_from_the_header_or_the_shape():
    doc = {"schemaVersion": 2, "manifests": []}
    assert manifest.parse(json.dumps(doc).encode(), manifest.DOCKER_LIST + "; charset=utf-8")[0] == manifest.DOCKER_LIST
    assert manifest.parse(json.dumps(doc).encode())[0] == manifest.OCI_INDEX


@pytest.mark.parametrize("data, message", [
    (b"not json", "not JSON"), (b"[]", "not a JSON object"),
    (json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), "schema 1"),
    (json.dumps({"schemaVersion": 2, "mediaType": "application/x-weird"}).encode(), "unsupported media type"),
])
def test_bad_manifests(data, message):
    with pytest.raises(InvalidImage, match=message):
        manifest.parse(data)


@pytest.mark.parametrize("bad, message", [
    (desc(digest="sha256:xyz"), "bad digest"), (desc(digest="md5:" + "a" * 64), "bad digest"),
    (desc(size=-1), "bad size"), (desc(size="10"), "bad size"), (desc(mt="application/x-tar"), "unsupported layer"),
])
def test_bad_descriptors(bad, message):
    doc = {"config": desc(E, 5, manifest.OCI_CONFIG), "layers": [bad]}
    with pytest.raises(InvalidImage, match=message):
        manifest.image_parts(doc, "x")


def plat(os_, arch, variant=""):
    return manifest.Descriptor(manifest.OCI_MANIFEST, D, 1, (), manifest.Platform(os_, arch, variant))


@pytest.mark.parametrize("want, index, chosen", [
    (("linux", "amd64"), [plat("linux", "arm64", "v8"), plat("linux", "amd64")], 1),
    (("linux", "arm64", "v8"), [plat("linux", "arm64"), plat("linux", "arm64", "v8")], 1),  # exact variant wins
    (("linux", "arm64", "v8"), [plat("windows", "arm64"), plat("linux", "arm64")], 1),  # none given: matches
    (("linux", "arm", "v7"), [plat("linux", "arm", "v6"), plat("linux", "arm", "v7")], 1),
])
def test_platform_choice(want, index, chosen):
    assert manifest.choose(index, manifest.Platform(*want), "x") is index[chosen]


def test_platform_missing_lists_what_there_is():
    with pytest.raises(InvalidImage, match=r"no image for linux/s390x \(the index has: linux/amd64, linux/arm/v7\)"):
        manifest.choose([plat("linux", "arm", "v7"), plat("linux", "amd64")], manifest.Platform("linux", "s390x"), "x")


@pytest.mark.parametrize("text, ok", [("linux/amd64", True), ("linux/arm64/v8", True), ("linux", False),
                                      ("linux//v7", False), ("a/b/c/d", False)])
def test_parse_platform(text, ok):
    if ok:
        assert "/".join(x for x in manifest.parse_platform(text) if x) == text
    else:
        with pytest.raises(UsageError):
            manifest.parse_platform(text)


def test_oci_manifest_for_push_maps_docker_types():
    doc = json.loads(manifest.oci_manifest(E, 5, [(D, 10, manifest.DOCKER_LAYER_TAR), (D, 10, manifest.DOCKER_LAYER)]))
    assert [lr["mediaType"] for lr in doc["layers"]] == [manifest.OCI_LAYER, manifest.OCI_LAYER_GZIP]
    assert doc["config"] == {"mediaType": manifest.OCI_CONFIG, "digest": E, "size": 5}


@pytest.mark.parametrize("header, scheme, params", [
    ('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"',
     "bearer", {"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull"}),
    ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
    ("Bearer realm=https://x/t, service=x", "bearer", {"realm": "https://x/t", "service": "x"}),
    ('Bearer realm="https://x/t",scope="repository:a:pull,push"', "bearer",
     {"realm": "https://x/t", "scope": "repository:a:pull,push"}),
])
def test_parse_challenge(header, scheme, params):
    assert _parse_challenge(header) == (scheme, params)


def test_credentials_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert auth.lookup("r.example:5000") is None
    path = auth.store("r.example:5000", "me", "pa:ss")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert auth.lookup("r.example:5000") == ("me", "pa:ss")
    auth.store("docker.io", "hub", "x")
    assert "https://index.docker.io/v1/" in json.loads((tmp_path / "auth.json").read_text())["auths"]
    assert auth.lookup("docker.io") == ("hub", "x")
    assert auth.remove("r.example:5000") and not auth.remove("r.example:5000")
    assert auth.lookup("r.example:5000") is None


def test_docker_config_is_read_too(tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps(
        {"auths": {"https://ghcr.example": {"username": "u", "password": "p"}}}))
    assert auth.lookup("ghcr.example") == ("u", "p")


def test_corrupt_credentials_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    (tmp_path / "auth.json").write_text("{broken")
    with pytest.raises(RootlessError, match="auth.json"):
        auth.lookup("x")


def test_registries_config(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[registries]\ninsecure = ["a:1"]\n\n[registries."docker.io"]\nmirrors = ["m:5000"]\nblocked = true\n')
    c = config.load(str(p))
    assert c.insecure == ("a:1",)
    assert c.registries == {"docker.io": {"mirrors": ["m:5000"], "blocked": True}}


@pytest.mark.parametrize("text, message", [
    ('[registries]\ninsecure = "a"\n', "insecure must be a list"),
    ('[registries."x"]\nmirrors = [1]\n', "mirrors must be a list"),
    ('[registries."x"]\nblocked = "yes"\n', "blocked must be true or false"),
    ('[registries."x"]\nlocation = "y"\n', "unknown key 'location'"),
    ('[registries]\nx = 1\n', "must be a table"),
])
def test_bad_registries_config(tmp_path, text, message):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(RootlessError, match=message):
        config.load(str(p))


def test_system_config_then_the_users(tmp_path, monkeypatch):
    system, user = tmp_path / "system.toml", tmp_path / "user.toml"
    system.write_text('[storage]\noverlay = "fuse"\nroot = "/srv/rl"\n\n[registries]\ninsecure = ["s:1"]\n\n'
                      '[registries."docker.io"]\nmirrors = ["m:1"]\n')
    user.write_text('[storage]\nroot = "/home/me/rl"\n\n[registries]\ninsecure = ["u:1"]\n\n'
                    '[registries."docker.io"]\nblocked = true\n')
    monkeypatch.setenv("ROOTLESS_SYSTEM_CONFIG", str(system))
    c = config.load(str(user))
    assert (c.root, c.overlay, c.insecure) == ("/home/me/rl", "fuse", ("s:1", "u:1"))
    assert c.registries["docker.io"] == {"mirrors": ["m:1"], "blocked": True}
    assert config.load(str(tmp_path / "none.toml")).overlay == "fuse"  # no user file: the system's
    system.write_text("[storage\n")
    with pytest.raises(RootlessError, match="system.toml"):
        config.load(str(user))


@pytest.mark.parametrize("text, line", [
    ('[storage]\nroot = "/x"\noverlay = "zfs"\n', 3),
    ('# c\n[registries]\n\ninsecure = "a"\n', 4),
    ('[registries."docker.io"]\nmirrors = ["m:1"]\nblocked = "yes"\n', 3),
    ('[userns]\nidmap = 5\n', 2),
])
def test_bad_config_names_file_and_line(tmp_path, text, line):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(RootlessError, match=rf"bad config {p}:{line}: "):
        config.load(str(p))


@pytest.mark.parametrize("registry, loopback", [
    ("127.0.0.1:5000", True), ("127.1.2.3", True), ("localhost", True), ("LOCALHOST:443", True),
    ("[::1]:5000", True), ("::1", True), ("10.0.0.1:5000", False), ("registry.example:5000", False),
    ("docker.io", False), ("[fe80::1]:5000", False), ("localhost.example", False), ("127.0.0.1.nip.io", False),
])
def test_loopback_registries_may_answer_in_plain_http(registry, loopback):
    from layers.registry import Client, is_loopback
    assert is_loopback(registry) is loopback
    assert Client(registry, "x/y").schemes == (["https", "http"] if loopback else ["https"])
    assert Client(registry, "x/y", insecure=True).schemes == ["https", "http"]


@pytest.mark.parametrize("registry, listed, setting, insecure", [
    ("127.0.0.1:5000", (), None, True), ("[::1]:5000", (), None, True), ("localhost:5000", (), None, True),
    ("127.0.0.1:5000", (), False, False),  # its own table says secure: verified, even on the loopback
    ("registry.example:5000", (), None, False), ("10.1.2.3:5000", (), None, False),
    ("registry.example:5000", ("registry.example:5000",), None, True),
    ("registry.example:5000", ("registry.example",), None, False),  # a name matches host[:port] exactly
    ("10.1.2.3:5000", ("10.0.0.0/8",), None, True), ("10.1.2.3:5000", ("192.168.0.0/16",), None, False),
    ("registry.example:5000", (), True, True), ("docker.io", (), None, False),
    ("loopname.test:5000", (), None, True),  # resolves to 127.0.0.1 (below)
    ("lan.test:5000", ("10.0.0.0/8",), None, True),  # resolves into a listed CIDR
])
def test_which_registries_are_insecure_as_docker_decides(monkeypatch, registry, listed, setting, insecure):
    """moby's isSecureIndex: the registry's own setting first, then the list by name, then its
    addresses (a name resolved) against the listed CIDRs and the loopback's."""
    import socket

    from layers.registry import is_insecure
    names = {"loopname.test": "127.0.0.1", "lan.test": "10.9.8.7"}

    def fake_getaddrinfo(host, *_a, **_k):
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], 0))]
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert is_insecure(registry, listed, setting) is insecure


def test_a_loopback_registry_is_asked_over_tls_without_verification_then_plain_http():
    """Docker's order for an insecure registry: HTTPS unverified (certs.d unread), then HTTP; a
    secure one (its own ``insecure = false``) is verified and never asked in plain HTTP."""
    import ssl

    from layers.registry import Client
    loop = Client("127.0.0.1:5000", "x/y")
    assert loop.schemes == ["https", "http"]
    ctx = loop._ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    secure = Client("127.0.0.1:5000", "x/y", insecure=False)
    assert secure.schemes == ["https"] and secure._ssl_context().verify_mode == ssl.CERT_REQUIRED
    assert Client("registry.example:5000", "x/y")._ssl_context().verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("ref_text, status, body, message", [
    ("docker.io/library/busybox:9", 404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
     "manifest for busybox:9 not found: manifest unknown: manifest unknown"),
    ("127.0.0.1:5000/a/b@" + D, 404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
     f"manifest for 127.0.0.1:5000/a/b@{D} not found: manifest unknown: manifest unknown"),
    ("127.0.0.1:5000/a/b:1", 404, {"errors": [{"code": "NAME_UNKNOWN",
                                                "message": "repository name not known to registry"}]},
     "repository 127.0.0.1:5000/a/b not found: name unknown: repository name not known to registry"),
    ("docker.io/library/nosuch:latest", 401, {"errors": [{"code": "DENIED",
                                                           "message": "requested access to the resource is denied"}]},
     "pull access denied for nosuch, repository does not exist or may require 'docker login': denied: "
     "requested access to the resource is denied"),  # Docker Hub's answer for a repository it lacks
])
def test_a_missing_manifest_or_repository_is_a_404_in_dockers_words(ref_text, status, body, message):
    """What Docker says (and the API's status, 404, which docker-py makes a NotFound of)."""
    from layers.registry import Client, RegistryNotFound, Response
    from rootless.api.routes import status_of
    client = Client("127.0.0.1:5000", "a/b", ref_text=ref_text)
    err = client._error(Response(status, {}, json.dumps(body).encode()), "manifest")
    assert isinstance(err, RegistryNotFound) and err.message == message and err.status == status
    assert status_of(err) == 404 and err.exit_code == 125
    other = client._error(Response(404, {}, b"not json"), "manifest")  # no code: our line, still a 404
    assert isinstance(other, RegistryNotFound) and "not found in 127.0.0.1:5000" in other.message


def test_a_denied_push_is_no_missing_image():
    from layers.registry import Client, RegistryNotFound, Response
    client = Client("127.0.0.1:5000", "a/b", push=True, ref_text="127.0.0.1:5000/a/b:1")
    err = client._error(Response(403, {}, json.dumps({"errors": [{"code": "DENIED", "message": "no"}]}).encode()),
                        "blob upload")
    assert not isinstance(err, RegistryNotFound) and "access denied by 127.0.0.1:5000" in err.message


def test_service_config_is_dockers_registry_config():
    from layers.registry import service_config
    plain = service_config()
    assert plain["InsecureRegistryCIDRs"] == ["::1/128", "127.0.0.0/8"] and plain["Mirrors"] == []
    assert plain["IndexConfigs"] == {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True,
                                                   "Official": True}}
    conf = service_config(["10.0.0.1/8", "::1/128", "reg:5000", "not a/cidr"],
                          {"docker.io": {"mirrors": ["10.2.3.4:5000", "m.example"]},
                           "tls.example": {"insecure": False}, "blocked.example": {"blocked": True}})
    assert conf["InsecureRegistryCIDRs"] == ["10.0.0.0/8", "::1/128", "127.0.0.0/8"]  # normalized, once each
    assert conf["Mirrors"] == ["http://10.2.3.4:5000/", "https://m.example/"]
    assert conf["IndexConfigs"]["reg:5000"]["Secure"] is False
    assert conf["IndexConfigs"]["tls.example"]["Secure"] is True
    assert set(conf["IndexConfigs"]) == {"reg:5000", "tls.example", "docker.io"}
