"""Images from and to a real registry (Debian's docker-registry on 127.0.0.1): push, pull, run's
pull, errors, a corrupted blob, a multi-platform index, basic auth and login, TLS."""

from __future__ import annotations

import json
import os
import re
import stat
import urllib.request

import pytest

from tests.conftest import Rootless
from tests.registryd import Registry

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl, images, registry) -> Rootless:
    rl.load(images, "busybox")
    rl.configure(insecure=(registry.host,))
    return rl


def image_id(rl: Rootless, ref: str) -> str:
    return rl("inspect", "-f", "{{.Id}}", ref).out.strip()


def pushed_digest(r) -> tuple[str, int]:
    m = re.search(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)", r.err)
    assert m, r.err
    return m.group(1), int(m.group(2))


def test_push_rmi_pull_run(bb, registry):
    ref = f"{registry.host}/rt/busybox:v1"
    local = image_id(bb, "busybox")
    r = bb("push", "busybox", ref)
    digest, _ = pushed_digest(r)
    bb("rmi", "busybox")
    assert bb("images", "-q").out == ""
    r = bb("pull", ref)
    assert r.out.strip() == ref
    assert f"Digest: {digest}" in r.err
    assert image_id(bb, ref) == local  # the same config, the same image
    assert (bb("inspect", "-f", "{{json .RepoDigests}}", ref).out.strip()
            == json.dumps([f"{registry.host}/rt/busybox@{digest}"]))
    assert bb("run", "--rm", ref, "echo", "pulled").out == "pulled\n"
    again = bb("pull", ref)  # nothing to download a second time
    assert "Already exists" in again.err and "Pull complete" not in again.err
    by_digest = bb("pull", "-q", f"{registry.host}/rt/busybox@{digest}")
    assert by_digest.out.strip() == f"{registry.host}/rt/busybox@{digest}" and by_digest.err == ""
    r = bb("run", "--rm", "--pull", "never", f"{registry.host}/rt/busybox@{digest}", "echo", "by digest")
    assert r.out == "by digest\n"  # found locally by its repository digest
    r = bb("inspect", f"{registry.host}/other@{digest}", expect=1)  # another repository: not that image


def test_run_pulls_what_is_missing(bb, registry):
    ref = f"{registry.host}/rt/auto:1"
    bb("push", "-q", "busybox", ref)
    r = bb("run", "--rm", "--pull", "never", ref, "true", expect=125)
    assert f"No such image: {ref}" in r.err
    r = bb("run", "--rm", ref, "echo", "ran")
    assert r.out == "ran\n"
    assert r.err.startswith(f"Unable to find image '{ref}' locally\n") and "Pulling from" in r.err
    r = bb("run", "--rm", "--pull", "always", ref, "echo", "again")
    assert r.out == "again\n" and "Pulling from" in r.err
    r = bb("run", "--rm", "-q", "--pull", "always", ref, "echo", "quietly")  # Docker's -q: no pull output
    assert r.out == "quietly\n" and r.err == ""
    r = bb("create", "--pull", "sometimes", ref, expect=125)
    assert "invalid --pull policy" in r.err


def test_missing_image_names_the_reference(bb, registry):
    r = bb("pull", f"{registry.host}/no/such:tag", expect=125)
    assert f"{registry.host}/no/such:tag" in r.err and "not found" in r.err
    assert "Traceback" not in r.err


def test_plain_http_on_loopback_needs_no_declaration(rl, images, registry):
    """As Docker: a registry on 127.0.0.0/8 may speak plain HTTP undeclared (elsewhere the user
    must say so: tests/unit/test_registry_parts.py)."""
    rl.load(images, "busybox")
    ref = f"{registry.host}/rt/plain:1"
    rl("push", "busybox", ref)
    rl("push", "--tls-verify=false", "busybox", ref)
    rl("rmi", "busybox")
    rl("pull", ref)


def test_corrupted_blob_is_refused_and_nothing_is_stored(bb, registry):
    ref = f"{registry.host}/rt/corrupt:1"
    bb("push", "busybox", ref)
    rec = next(iter(json.loads((bb.root / "images.json").read_text())["images"].values()))
    layer_blob = rec["layers"][0]["blob"]
    path = registry.blob_path(layer_blob)
    original = path.read_bytes()
    try:
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0xFF
        path.write_bytes(bytes(damaged))
        bb("rmi", "busybox")
        r = bb("pull", ref, expect=125)
        assert "does not match" in r.err and "Traceback" not in r.err
        assert bb("images", "-q").out == ""
        assert not any(layer_blob[7:] in p.name for p in bb.root.rglob("*"))  # not stored, not half-stored
        assert bb.leftovers() == []
    finally:
        path.write_bytes(original)
    bb("pull", ref)  # mended: the same pull works


def test_multi_platform_index(bb, images, registry):
    bb.load(images, "layered")
    base = f"{registry.host}/multi"
    amd, amd_size = pushed_digest(bb("push", "busybox", f"{base}:amd64"))
    arm, arm_size = pushed_digest(bb("push", "layered", f"{base}:arm64"))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm, "size": arm_size,
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd, "size": amd_size,
         "platform": {"os": "linux", "architecture": "amd64"}}]}
    req = urllib.request.Request(f"http://{base.replace(registry.host, registry.host + '/v2')}/manifests/latest",
                                 data=json.dumps(index).encode(), method="PUT",
                                 headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    urllib.request.urlopen(req, timeout=10).close()
    want = {"amd64": image_id(bb, "busybox"), "arm64": image_id(bb, "layered")}
    bb("rmi", "-f", "busybox", "layered", f"{base}:amd64", f"{base}:arm64", expect=None)
    bb("pull", "--platform", "linux/arm64", f"{base}:latest")
    assert image_id(bb, f"{base}:latest") == want["arm64"]
    bb("pull", "--platform", "linux/amd64", f"{base}:latest")
    assert image_id(bb, f"{base}:latest") == want["amd64"]
    r = bb("pull", "--platform", "linux/s390x", f"{base}:latest", expect=125)
    assert "no image for linux/s390x" in r.err and "linux/arm64/v8" in r.err
    # run/create --platform: a local image of another platform counts as missing
    r = bb("run", "--rm", "--network", "none", "--pull", "never", "--platform", "linux/arm64", f"{base}:latest",
           "true", expect=125)
    assert "does not match the specified platform: wanted linux/arm64, actual: linux/amd64" in r.err
    bb("create", "--network", "none", "--platform", "linux/arm64", f"{base}:latest", "true")
    assert image_id(bb, f"{base}:latest") == want["arm64"]
    bb("run", "--rm", "--network", "none", "--pull", "never", "--platform", "linux/arm64/v8", f"{base}:latest", "true")
    r = bb("run", "--rm", "--platform", "linux", f"{base}:latest", "true", expect=125)
    assert "invalid platform 'linux'" in r.err


# ---- basic auth and login -------------------------------------------------------------------
@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    r = Registry(tmp_path_factory.mktemp("auth-registry"), users={"alice": "s3cret"})
    yield r
    r.stop()


def test_login_push_pull_logout(rl, images, auth_registry):
    rl.load(images, "busybox")
    rl.configure(insecure=(auth_registry.host,))
    ref = f"{auth_registry.host}/alice/busybox:1"
    r = rl("push", "busybox", ref, expect=125)
    assert "authentication required" in r.err and f"rootless login {auth_registry.host}" in r.err
    r = rl("login", "-u", "alice", "--password-stdin", auth_registry.host, input="wrong\n", expect=125)
    assert "authentication required" in r.err
    assert not (rl.base / "auth.json").exists()
    r = rl("login", "-u", "alice", "--password-stdin", auth_registry.host, input="s3cret\n")
    assert r.out == "Login Succeeded!\n"
    auth_file = rl.base / "auth.json"
    assert stat.S_IMODE(os.stat(auth_file).st_mode) == 0o600
    assert auth_registry.host in json.loads(auth_file.read_text())["auths"]
    rl("push", "busybox", ref)
    rl("rmi", "busybox")
    rl("pull", ref)
    assert rl("logout", auth_registry.host).out == f"Removed login credentials for {auth_registry.host}\n"
    rl("rmi", ref)
    r = rl("pull", ref, expect=125)
    assert "authentication required" in r.err
    rl("pull", "--creds", "alice:s3cret", ref)  # one-off credentials, nothing saved
    assert auth_registry.host not in json.loads(auth_file.read_text())["auths"]
    r = rl("logout", auth_registry.host, expect=1)
    assert "not logged in" in r.err


# ---- TLS --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory):
    r = Registry(tmp_path_factory.mktemp("tls-registry"), tls=True)
    yield r
    r.stop()


def declare_secure(rl: Rootless, host: str) -> None:
    """``[registries."HOST"] insecure = false``: verified even on the loopback (Docker's per-index
    setting; undeclared, a loopback registry's certificate is not checked)."""
    rl.config.write_text(rl.config.read_text() + f'\n[registries."{host}"]\ninsecure = false\n')


@pytest.fixture(scope="module")
def self_signed_registry(tmp_path_factory):
    r = Registry(tmp_path_factory.mktemp("self-signed-registry"), tls="self-signed")
    yield r
    r.stop()


def test_a_tls_registry_on_loopback_needs_no_configuration(rl, images, self_signed_registry):
    """As Docker: a registry on 127.0.0.0/8 is insecure by default, so one that speaks only TLS
    with a self-signed certificate is used unverified (HTTPS first), for push and pull alike."""
    rl.load(images, "busybox")
    ref = f"{self_signed_registry.host}/selfsigned/busybox:1"
    rl("push", "busybox", ref)
    rl("rmi", "busybox")
    rl("pull", ref)
    assert rl("run", "--rm", ref, "echo", "unverified").out == "unverified\n"
    declare_secure(rl, self_signed_registry.host)  # declared secure: its certificate is checked
    r = rl("pull", ref, expect=125)
    assert "TLS" in r.err and "certs.d" in r.err and "Traceback" not in r.err


def test_tls_registry_with_its_ca_in_certs_d(rl, images, tls_registry):
    rl.load(images, "busybox")
    ref = f"{tls_registry.host}/secure/busybox:1"
    declare_secure(rl, tls_registry.host)
    r = rl("push", "busybox", ref, expect=125)
    assert "TLS" in r.err and "certs.d" in r.err
    rl("push", "--tls-verify=false", "busybox", ref)  # a one-off: no verification
    certs = rl.config.parent / "certs.d" / tls_registry.host
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(tls_registry.ca.read_bytes())
    rl("rmi", "busybox")
    rl("pull", ref)  # verified with the CA from certs.d
    assert rl("run", "--rm", ref, "echo", "tls").out == "tls\n"


# ---- mirrors and blocked registries ---------------------------------------------------------------
def test_short_names_come_from_mirrors_in_order(rl, images, registry):
    """docker.io is blocked here (the tests never leave the machine): a dead mirror is skipped, the
    next one serves ``library/...``, the name the image gets is still docker.io's."""
    rl.load(images, "busybox")
    rl.configure(insecure=(registry.host,))
    rl("push", "busybox", f"{registry.host}/library/mirrored:1")
    rl("rmi", "busybox")
    text = rl.config.read_text().replace('[registries."docker.io"]\nblocked = true\n', "")
    dead = "127.0.0.1:9"  # the discard port: nothing listens there
    rl.config.write_text(text + f'\n[registries."docker.io"]\nmirrors = ["{dead}", "{registry.host}"]\n'
                         "blocked = true\n"
                         f'\n[registries."{dead}"]\ninsecure = true\n')
    r = rl("pull", "mirrored:1")
    assert r.out.strip() == "docker.io/library/mirrored:1"
    assert rl("inspect", "-f", "{{json .RepoTags}}", "mirrored:1").out.strip() == '["mirrored:1"]'
    assert rl("run", "--rm", "mirrored:1", "echo", "from a mirror").out == "from a mirror\n"
    r = rl("push", "mirrored:1", expect=125)  # pushes never go to a mirror; docker.io is blocked
    assert "registry docker.io is blocked" in r.err


def test_short_names_are_looked_for_in_the_search_list(bb, registry):
    """``registries.search`` (here from the system-wide file): a short name is tried at each registry
    in turn; one answering 404 and a blocked one pass it on; local short names resolve the same way."""
    from tests.registryd import FaultyProxy
    bb("push", "-q", "busybox", f"{registry.host}/searched:1")
    bb("rmi", "busybox")
    empty = FaultyProxy(registry, always={"/manifests/": 404})
    try:
        bb.configure(insecure=(registry.host, empty.host))
        (bb.base / "system-config.toml").write_text(
            f'[registries]\nsearch = ["{empty.host}", "docker.io", "{registry.host}"]\n')
        r = bb("run", "--rm", "--network", "none", "searched:1", "echo", "found")
        assert r.out == "found\n"
        for host in (empty.host, "docker.io", registry.host):
            assert f"Trying to pull {host}/" in r.err
        assert bb("images", "--format", "{{.Repository}}:{{.Tag}}").out.split() == [f"{registry.host}/searched:1"]
        assert bb("run", "--rm", "--network", "none", "--pull", "never", "searched:1", "echo", "local").out == "local\n"
        r = bb("pull", "nowhere:1", expect=125)
        assert "not found in any registry of the search list (3 tried)" in r.err
        assert "blocked" in r.err and f"not found in {empty.host}" in r.err
    finally:
        empty.stop()
    (bb.base / "system-config.toml").write_text('[registries]\nsearch = ["docker.io", "not a host"]\n')
    r = bb("pull", "busybox", expect=125)
    assert f"{bb.base / 'system-config.toml'}:2" in r.err and "registries.search" in r.err


def test_bad_registry_config_is_named(rl):
    rl.config.write_text('[registries."x:1"]\nmirrors = "not-a-list"\n')
    r = rl("pull", "x:1/a:b", expect=125)
    assert str(rl.config) in r.err and "mirrors must be a list" in r.err


def test_zstd_layer(bb, registry, tmp_path):
    """An image whose layer is zstd-compressed (made here, uploaded through the raw API)."""
    import tarfile

    import zstandard

    from tests.registryd import put_manifest, upload_blob
    rec = next(iter(json.loads((bb.root / "images.json").read_text())["images"].values()))
    bb("save", "-o", str(tmp_path / "saved.tar"), "busybox")  # the layer's tar (the store keeps its tree)
    with tarfile.open(tmp_path / "saved.tar") as tf:
        layer = tf.extractfile(f"blobs/sha256/{rec['layers'][0]['blob'][7:]}").read()
    config = (bb.root / "blobs" / "sha256" / rec["id"][7:]).read_bytes()
    zst = zstandard.ZstdCompressor(level=3).compress(layer)
    layer_digest = upload_blob(registry, "zst/busybox", zst)
    config_digest = upload_blob(registry, "zst/busybox", config)
    put_manifest(registry, "zst/busybox", "1", {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": layer_digest,
                    "size": len(zst)}]})
    bb("rmi", "busybox")
    ref = f"{registry.host}/zst/busybox:1"
    bb("pull", ref)
    assert image_id(bb, ref) == rec["id"]  # the same diff ids: the same image
    assert bb("run", "--rm", ref, "echo", "zstd").out == "zstd\n"


def test_killed_pull_leaves_no_image_and_resumes(bb, registry):
    """A pull killed while its big layer downloads: no image; the next pull keeps the layers that
    were finished ("Already exists"), goes on with the big one from where it was, and completes."""
    import signal
    import subprocess
    import time

    from tests.conftest import rootless_argv
    bb("run", "--name", "big", "--network", "none", "busybox", "sh", "-c",
       "head -c 300000000 /dev/urandom > /big")
    ref = f"{registry.host}/rt/big:1"
    bb("commit", "big", ref)
    bb("rm", "big")
    bb("push", "-q", ref)
    recs = json.loads((bb.root / "images.json").read_text())["images"]
    big = next(r for r in recs.values() if ref in r["repo_tags"])
    small_blob, big_blob = big["layers"][0]["blob"], big["layers"][1]["blob"]
    bb("rmi", "-f", ref, "busybox")
    assert not (bb.root / "blobs" / "sha256" / small_blob[7:]).exists()
    partial = bb.root / "tmp" / f"partial-{big_blob[7:]}"

    def far_enough() -> bool:
        return (bb.root / "blobs" / "sha256" / small_blob[7:]).exists() and \
            partial.exists() and partial.stat().st_size >= 1 << 20

    p = subprocess.Popen(rootless_argv() + ["pull", ref], env=bb.env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not far_enough() and time.monotonic() < deadline:
        time.sleep(0.002)
    p.send_signal(signal.SIGKILL)
    p.wait()
    if (bb.root / "blobs" / "sha256" / big_blob[7:]).exists():
        pytest.skip("the big layer finished before the pull could be killed (a very fast disk)")
    assert bb("images", "-q").out == ""  # no partial image is visible
    kept = partial.stat().st_size
    assert kept >= 1 << 20
    r = bb("pull", ref)
    assert f"{small_blob[7:19]}: Already" in r.err  # exists (unpacked) or downloaded (not yet unpacked)
    assert f"{small_blob[7:19]}: Download complete" not in r.err
    assert f"{big_blob[7:19]}: Resuming download at {kept / 1e6:.1f}MB" in r.err  # the half blob goes on
    assert f"{big_blob[7:19]}: Pull complete" in r.err and not partial.exists()
    assert image_id(bb, ref) == big["id"]
    assert bb.leftovers() == []  # the killed pull's temporary blob was swept
    assert bb("run", "--rm", "--network", "none", ref, "sh", "-c", "wc -c < /big").out.strip() == "300000000"


def test_concurrent_pulls_of_one_image(rl, images, registry):
    """Two shells pull the same image at once: both succeed, the store holds one copy."""
    import subprocess

    from tests.conftest import rootless_argv
    rl.load(images, "layered")
    rl.configure(insecure=(registry.host,))
    ref = f"{registry.host}/rt/together:1"
    rl("push", "-q", "layered", ref)
    want = image_id(rl, "layered")
    rl("rmi", "layered")
    procs = [subprocess.Popen(rootless_argv() + ["pull", "-q", ref], env=rl.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(3)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0, 0], results
    assert rl("images", "-q").out.split() == [want[7:19]]
    rec = json.loads((rl.root / "images.json").read_text())["images"][want]
    blobs = sorted(p.name for p in (rl.root / "blobs" / "sha256").iterdir())
    assert blobs == sorted({want[7:]} | {lr["blob"][7:] for lr in rec["layers"]})
    assert sorted(p.name for p in (rl.root / "layers").iterdir()) == sorted(lr["diff_id"][7:] for lr in rec["layers"])
    assert rl.leftovers() == []
    assert rl("run", "--rm", "--network", "none", ref, "true").code == 0


# ---- token auth ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    from tests.registryd import TokenServer
    base = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(base / "tokens", users={"bob": "hunter2"})
    r = Registry(base / "registry", token=tokens)
    r.tokens = tokens
    yield r
    r.stop()
    tokens.stop()


def test_token_auth_anonymous_pull_and_authenticated_push(rl, images, token_registry):
    rl.load(images, "busybox")
    rl.configure(insecure=(token_registry.host,))
    ref = f"{token_registry.host}/pub/busybox:1"
    r = rl("push", "busybox", ref, expect=125)  # an anonymous token grants pull only
    assert "authentication required" in r.err
    r = rl("login", "-u", "bob", "--password-stdin", token_registry.host, input="wrong\n", expect=125)
    assert "refused the credentials" in r.err
    rl("login", "-u", "bob", "--password-stdin", token_registry.host, input="hunter2\n")
    rl("push", "busybox", ref)
    assert any(user == "bob" and scope.startswith("repository:pub/busybox:") and
               set(scope.rsplit(":", 1)[1].split(",")) == {"pull", "push"}
               for user, scope in token_registry.tokens.requests)  # the registry orders the actions
    rl("logout", token_registry.host)
    rl("rmi", "busybox")
    rl("pull", ref)  # anonymously, with a token from the challenge's realm
    assert ("", "repository:pub/busybox:pull") in token_registry.tokens.requests
    assert rl("run", "--rm", "--network", "none", ref, "echo", "token").out == "token\n"


def test_all_tags(bb, images, registry):
    bb.load(images, "layered")
    repo = f"{registry.host}/rt/many"
    bb("tag", "busybox", f"{repo}:a")
    bb("tag", "layered", f"{repo}:b")
    bb("tag", "busybox", f"{repo}:c")
    bb("push", "--all-tags", "-q", repo)
    bb("rmi", "-f", f"{repo}:a", f"{repo}:b", f"{repo}:c", "busybox", "layered")
    r = bb("pull", "--all-tags", "-q", repo)
    assert r.out.split() == [f"{repo}:a", f"{repo}:b", f"{repo}:c"]
    assert image_id(bb, f"{repo}:a") == image_id(bb, f"{repo}:c") != image_id(bb, f"{repo}:b")
    r = bb("pull", "--all-tags", f"{repo}:a", expect=125)
    assert "without a tag" in r.err


def test_progress_on_a_terminal(bb, registry):
    """On a terminal each layer's line is redrawn in place; -q prints nothing but the reference."""
    import pty
    import subprocess

    from tests.conftest import drain_pty, rootless_argv
    ref = f"{registry.host}/rt/tty:1"
    bb("push", "-q", "busybox", ref)
    bb("rmi", "busybox")
    master, slave = pty.openpty()
    p = subprocess.run(rootless_argv() + ["pull", ref], env=bb.env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=slave, timeout=120)
    os.close(slave)
    tty_text = drain_pty(master).decode(errors="replace")
    assert p.returncode == 0 and p.stdout.decode().strip() == ref
    assert "\x1b[1A" in tty_text and "Pull complete" in tty_text


# ---- transient and persistent errors ---------------------------------------------------------------
def test_transient_errors_are_retried_persistent_ones_named(bb, registry):
    """A proxy in front of the real registry answers 429 and 503 first: the pull retries and works;
    a blob that always fails with 500 ends the pull with the status and the reference named."""
    from tests.registryd import FaultyProxy
    ref = f"{registry.host}/rt/flaky:1"
    bb("push", "-q", "busybox", ref)
    rec = next(iter(json.loads((bb.root / "images.json").read_text())["images"].values()))
    layer = rec["layers"][0]["blob"]
    bb("rmi", "busybox")
    proxy = FaultyProxy(registry, faults={"/manifests/": [429, 503], f"/blobs/{layer}": [502]})
    try:
        bb.configure(insecure=(registry.host, proxy.host))
        bb("pull", f"{proxy.host}/rt/flaky:1")
        statuses = [s for _m, _p, s in proxy.seen]
        assert statuses[:3] == [429, 503, 200] and 502 in statuses
        assert image_id(bb, f"{proxy.host}/rt/flaky:1") == rec["id"]
    finally:
        proxy.stop()
    bb("rmi", f"{proxy.host}/rt/flaky:1")
    broken = FaultyProxy(registry, always={"/blobs/": 500})
    try:
        bb.configure(insecure=(registry.host, broken.host))
        r = bb("pull", f"{broken.host}/rt/flaky:1", expect=125)
        assert f"{broken.host}/rt/flaky:1" in r.err and "answered 500" in r.err and "injected" in r.err
        assert bb("images", "-q").out == "" and bb.leftovers() == []
    finally:
        broken.stop()


def test_a_download_that_breaks_off_goes_on_from_where_it_stopped(bb, registry):
    """The layer's connection is closed halfway, twice: the pull asks for the rest (a Range from
    the byte it had) and completes. From a server that ignores ranges, the whole blob comes again
    and the part already read is skipped. A blob that always breaks off ends the pull, named."""
    from tests.registryd import FaultyProxy
    ref = f"{registry.host}/rt/broken-off:1"
    bb("push", "-q", "busybox", ref)
    rec = next(iter(json.loads((bb.root / "images.json").read_text())["images"].values()))
    layer = rec["layers"][0]["blob"]
    size = registry.blob_path(layer).stat().st_size
    bb("rmi", "busybox")
    for ignore_range in (False, True):
        proxy = FaultyProxy(registry, cut={f"/blobs/{layer}": 2}, ignore_range=ignore_range)
        try:
            bb.configure(insecure=(registry.host, proxy.host))
            theirs = f"{proxy.host}/rt/broken-off:1"
            bb("pull", theirs)
            got = [s for m, p, s in proxy.seen if m == "GET" and layer in p]
            assert got == ([200, 206, 206] if not ignore_range else [200, 200, 200]), got
            half = size // 2
            assert proxy.ranges == [f"bytes={half}-", f"bytes={half if ignore_range else half + (size - half) // 2}-"]
            assert image_id(bb, theirs) == rec["id"]
            assert bb("run", "--rm", theirs, "echo", "whole").out == "whole\n"
            bb("rmi", theirs)
        finally:
            proxy.stop()
    partial = bb.root / "tmp" / f"partial-{layer[7:]}"
    proxy = FaultyProxy(registry, cut={f"/blobs/{layer}": 100}, ignore_range=True)
    try:
        bb.configure(insecure=(registry.host, proxy.host))
        for pruned in (False, True):
            r = bb("pull", f"{proxy.host}/rt/broken-off:1", expect=125)
            assert "broke off 6 times" in r.err and f"{proxy.host}/rt/broken-off:1" in r.err
            assert bb("images", "-q").out == "" and bb.leftovers() == []
            assert partial.stat().st_size == size // 2  # what arrived is kept for the next pull
            if not pruned:
                r = bb("image", "prune", "-f")
                assert r.out.strip().endswith(f"Total reclaimed space: {size // 2 / 1e6:.3g}MB"), r.out
                assert not partial.exists()
    finally:
        proxy.stop()
    r = bb("pull", f"{registry.host}/rt/broken-off:1")  # goes on from there
    assert f"{layer[7:19]}: Resuming download at {size // 2 / 1e6:.1f}MB of {size / 1e6:.1f}MB" in r.err
    assert image_id(bb, f"{registry.host}/rt/broken-off:1") == rec["id"] and not partial.exists()


def test_blobs_served_from_elsewhere_are_followed(bb, registry):
    from tests.registryd import FaultyProxy
    ref = f"{registry.host}/rt/redirected:1"
    bb("push", "-q", "busybox", ref)
    want = image_id(bb, "busybox")
    bb("rmi", "busybox")
    proxy = FaultyProxy(registry, redirect_blobs=True)
    try:
        bb.configure(insecure=(registry.host, proxy.host))
        bb("pull", f"{proxy.host}/rt/redirected:1")
        assert 307 in [s for _m, _p, s in proxy.seen]
        assert image_id(bb, f"{proxy.host}/rt/redirected:1") == want
    finally:
        proxy.stop()


def test_layers_unpack_while_their_blobs_download(bb, registry):
    """Streamed: with a layer's download held at its middle, its first files are already unpacked
    (in a temporary directory); the layer moves into place only when the whole blob is verified."""
    import subprocess
    import threading
    import time

    from tests.conftest import rootless_argv
    from tests.registryd import FaultyProxy
    rec = _pushed_eight_megabytes(bb, registry, "halves")
    blob, diff_id = rec["layers"][1]["blob"], rec["layers"][1]["diff_id"]
    gate = threading.Event()
    proxy = FaultyProxy(registry, stall={f"/blobs/{blob}": gate})
    try:
        bb.configure(insecure=(registry.host, proxy.host))
        p = subprocess.Popen(rootless_argv() + ["pull", "-q", f"{proxy.host}/rt/halves:1"], env=bb.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        layers, early = bb.root / "layers", []
        deadline = time.monotonic() + 60
        while not early and time.monotonic() < deadline:
            early = [t for t in layers.glob(f".tmp-{diff_id[7:19]}-*") if (t / "d" / "f1").is_file()]
            time.sleep(0.01)
        assert early, "nothing was unpacked while the blob was half downloaded"
        assert not (bb.root / "blobs" / "sha256" / blob[7:]).exists()  # the blob is not complete
        assert not (layers / diff_id[7:]).exists()  # nor is the layer in place
        gate.set()
        assert p.wait(60) == 0, p.stderr.read()
    finally:
        gate.set()
        proxy.stop()
    assert bb.leftovers() == []
    out = bb("run", "--rm", "--network", "none", f"{proxy.host}/rt/halves:1", "sh", "-c", "cat /d/* | wc -c").out
    assert out.strip() == "8000000"


def _pushed_eight_megabytes(bb, registry, name: str) -> dict:
    """busybox and a layer of eight 1 MB random files, pushed as rt/NAME:1, not kept locally."""
    bb("run", "--name", name, "--network", "none", "busybox", "sh", "-c",
       "mkdir /d && for i in 1 2 3 4 5 6 7 8; do head -c 1000000 /dev/urandom > /d/f$i; done")
    ref = f"{registry.host}/rt/{name}:1"
    bb("commit", name, ref)
    bb("rm", name)
    bb("push", "-q", ref)
    rec = next(r for r in json.loads((bb.root / "images.json").read_text())["images"].values()
               if ref in r["repo_tags"])
    bb("rmi", ref)
    return rec


def test_ctrl_c_stops_a_stalled_pull_at_once_and_the_next_goes_on(bb, registry):
    """A pull whose layer download stalls halfway is interrupted (SIGINT, as ctrl-C): it exits 130
    without waiting for the stalled download, leaves no image and no half-unpacked layer, keeps
    the half blob; the next pull goes on from there."""
    import signal
    import subprocess
    import threading
    import time

    from tests.conftest import rootless_argv
    from tests.registryd import FaultyProxy
    rec = _pushed_eight_megabytes(bb, registry, "stalled")
    blob = rec["layers"][1]["blob"]
    size = registry.blob_path(blob).stat().st_size
    partial = bb.root / "tmp" / f"partial-{blob[7:]}"
    kept = (size // 2) >> 20 << 20  # the proxy sends half; the pull writes whole megabytes
    gate = threading.Event()
    proxy = FaultyProxy(registry, stall={f"/blobs/{blob}": gate})
    try:
        bb.configure(insecure=(registry.host, proxy.host))
        p = subprocess.Popen(rootless_argv() + ["pull", f"{proxy.host}/rt/stalled:1"], env=bb.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size == kept) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert partial.stat().st_size == kept
        p.send_signal(signal.SIGINT)
        assert p.wait(60) == 130 and not gate.is_set()  # ended while the download still stalled
        assert bb("images", "--format", "{{.Repository}}").out.split() == ["busybox"] and bb.leftovers() == []
        assert partial.stat().st_size == kept
    finally:
        gate.set()
        proxy.stop()
    r = bb("pull", f"{registry.host}/rt/stalled:1")
    assert f"{blob[7:19]}: Resuming download at {kept / 1e6:.1f}MB" in r.err
    assert image_id(bb, f"{registry.host}/rt/stalled:1") == rec["id"]
    out = bb("run", "--rm", "--network", "none", f"{registry.host}/rt/stalled:1", "sh", "-c", "cat /d/* | wc -c").out
    assert out.strip() == "8000000"


def test_foreign_layer_comes_from_its_urls(bb, registry):
    """A foreign (non-distributable) layer is not in the registry: it is downloaded from the URLs
    its descriptor names, verified like any blob; a URL that fails is a clear error, and no image."""
    import gzip
    import hashlib
    import http.server
    import io
    import tarfile
    import threading

    from tests.registryd import api, put_manifest, upload_blob
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        data = b"from elsewhere\n"
        info = tarfile.TarInfo("foreign.txt")
        info.size, info.mode = len(data), 0o644
        t.addfile(info, io.BytesIO(data))
    tar = raw.getvalue()
    blob = gzip.compress(tar, mtime=0)
    served = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            served.append(self.path)
            body = blob if self.path == "/layer.tgz" else b"gone"
            self.send_response(200 if self.path == "/layer.tgz" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        bb("push", "-q", "busybox", f"{registry.host}/rt/foreign:base")
        _, _, body = api(registry, "GET", "/v2/rt/foreign/manifests/base",
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        base = json.loads(body)
        assert base["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        _, _, cbody = api(registry, "GET", f"/v2/rt/foreign/blobs/{base['config']['digest']}")
        config = json.loads(cbody)
        config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar).hexdigest())
        cbytes = json.dumps(config).encode()
        port = httpd.server_address[1]
        for tag, url in (("1", f"http://127.0.0.1:{port}/layer.tgz"), ("broken", f"http://127.0.0.1:{port}/nothing")):
            doc = dict(base, config=dict(base["config"], digest=upload_blob(registry, "rt/foreign", cbytes),
                                         size=len(cbytes)))
            doc["layers"] = base["layers"] + [{
                "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
                "size": len(blob), "urls": [url]}]
            put_manifest(registry, "rt/foreign", tag, doc)
        r = bb("pull", f"{registry.host}/rt/foreign:broken", expect=125)
        assert "foreign layer" in r.err and "/nothing" in r.err and "Traceback" not in r.err
        assert bb.leftovers() == []
        bb("pull", f"{registry.host}/rt/foreign:1")
        assert served == ["/nothing", "/layer.tgz"]
        out = bb("run", "--rm", "--network", "none", f"{registry.host}/rt/foreign:1", "cat", "/foreign.txt").out
        assert out == "from elsewhere\n"
    finally:
        httpd.shutdown()
        httpd.server_close()


# ---- interoperability with podman and skopeo (CI installs both) -----------------------------------
def _tool(name: str, argv_tail: tuple[str, ...] = (), env: dict | None = None):
    """A runner of the installed tool ``name`` (the test is skipped where it is not): ``run(*args,
    check=True)`` fails the test with the tool's stderr when it fails."""
    import shutil
    import subprocess
    exe = shutil.which(name)
    if not exe:
        pytest.skip(f"{name} is not installed (the cross-check runs where it is)")

    def run(*args, check=True):
        cp = subprocess.run([exe, *argv_tail, *args], env=env, capture_output=True, text=True, timeout=120)
        if check and cp.returncode:
            pytest.fail(f"{name} {' '.join(args)}: {cp.stderr}")
        return cp
    return run


@pytest.fixture
def podman(tmp_path):
    """podman with its own storage, runtime dir and config (runc, cgroupfs: hybrid cgroups here)."""
    import shutil
    base = tmp_path / "podman"
    (base / "xdg").mkdir(parents=True, mode=0o700)
    conf = base / "containers.conf"
    conf.write_text('[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    (base / "auth.json").write_text('{"auths": {}}')
    env = dict(os.environ, CONTAINERS_CONF=str(conf), XDG_RUNTIME_DIR=str(base / "xdg"),
               REGISTRY_AUTH_FILE=str(base / "auth.json"))
    import tempfile
    runroot = tempfile.mkdtemp(prefix="pmrun-")  # podman wants a runroot under 50 characters
    try:
        pm = _tool("podman", ("--root", str(base / "root"), "--runroot", runroot, "--storage-driver", "vfs"), env)
        probe = pm("info", check=False)
        if probe.returncode:
            pytest.skip(f"podman does not work here: {probe.stderr.strip().splitlines()[-1:]}")
    except BaseException:  # skipped
        shutil.rmtree(runroot, ignore_errors=True)
        raise
    yield pm
    pm("unshare", "rm", "-rf", str(base / "root"), check=False)
    pm("system", "migrate", check=False)
    pause = base / "xdg" / "libpod" / "tmp" / "pause.pid"
    if pause.exists():
        try:
            os.kill(int(pause.read_text()), 9)
        except (ValueError, OSError):
            pass
    shutil.rmtree(runroot, ignore_errors=True)


def test_podman_pulls_what_we_push_and_we_pull_what_podman_pushes(bb, images, registry, podman):
    ours = f"{registry.host}/x/ours:1"
    bb("push", "-q", "busybox", ours)
    podman("pull", "-q", "--tls-verify=false", ours)
    assert podman("image", "inspect", "-f", "{{.Id}}", ours).stdout.strip() == image_id(bb, "busybox")[7:]
    podman("load", "-q", "-i", str(images / "layered.tar"))
    theirs = f"{registry.host}/x/theirs:1"
    podman("push", "-q", "--tls-verify=false", "layered:latest", theirs)
    bb("pull", theirs)
    bb.load(images, "layered")
    assert image_id(bb, theirs) == image_id(bb, "layered")
    assert bb("run", "--rm", "--network", "none", theirs, "true").code == 0


# ---- interoperability with skopeo -------------------------------------------------------------------
@pytest.fixture
def skopeo(tmp_path):
    auth = tmp_path / "skopeo-auth.json"
    auth.write_text('{"auths": {}}')
    run = _tool("skopeo", env=dict(os.environ, REGISTRY_AUTH_FILE=str(auth)))
    return lambda *args: run(*args).stdout


def test_skopeo_copies_what_we_push_and_we_pull_what_skopeo_pushes(bb, images, registry, skopeo, tmp_path):
    """Both directions through the registry: skopeo verifies every blob of our push (copying it to
    a directory, blobs as they are) and finds our manifest digest; we pull and run what skopeo pushed from a
    docker-archive, with the same image id as a local load."""
    bb.load(images, "layered")
    ours = f"{registry.host}/sk/ours:1"
    digest, _ = pushed_digest(bb("push", "layered", ours))
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ours}"))
    assert info["Digest"] == digest and len(info["Layers"]) == 3
    skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{ours}", f"dir:{tmp_path / 'copy'}")
    import hashlib
    copied = (tmp_path / "copy" / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(copied).hexdigest() == digest  # copied as is: same manifest
    for layer in json.loads(copied)["layers"]:
        assert (tmp_path / "copy" / layer["digest"][7:]).stat().st_size == layer["size"]
    theirs = f"{registry.host}/sk/theirs:1"
    skopeo("copy", "--quiet", "--dest-tls-verify=false", f"docker-archive:{images / 'busybox.tar'}", f"docker://{theirs}")
    bb("pull", theirs)
    assert image_id(bb, theirs) == image_id(bb, "busybox")
    assert bb("run", "--rm", "--network", "none", theirs, "echo", "via skopeo").out == "via skopeo\n"


# ---- push: cross-repository mounts, chunked uploads -----------------------------------------------
def test_push_mounts_blobs_from_another_repository(bb, registry):
    """An image pulled from one repository and pushed to another of the same registry: its layers
    are mounted across (no upload), and the pushed image pulls and runs."""
    from tests.registryd import FaultyProxy
    bb("push", "-q", "busybox", f"{registry.host}/rt/source:1")
    bb("rmi", "busybox")
    proxy = FaultyProxy(registry)
    try:
        bb.configure(insecure=(registry.host, proxy.host))
        src = f"{proxy.host}/rt/source:1"
        bb("pull", "-q", src)
        r = bb("push", src, f"{proxy.host}/rt/mounted:1")
        assert "Mounted" in r.err
        posts = [p for m, p, _s in proxy.seen if m == "POST"]
        assert any("mount=sha256:" in p and "from=rt/source" in p for p in posts), posts
        rec = next(iter(json.loads((bb.root / "images.json").read_text())["images"].values()))
        layers = [lr["blob"] for lr in rec["layers"]]
        uploads = [p for m, p, _s in proxy.seen if m in ("PUT", "PATCH") and "/blobs/uploads/" in p]
        assert not [p for p in uploads if any(lr in p for lr in layers)], uploads  # no layer went up
        bb("rmi", src)  # push SRC DEST (as podman) tags nothing here
        assert bb("run", "--rm", f"{proxy.host}/rt/mounted:1", "echo", "mounted").out == "mounted\n"
    finally:
        proxy.stop()


def test_big_blobs_go_up_in_chunks(registry, tmp_path, monkeypatch):
    """A blob larger than the chunk size is uploaded with PATCH requests, one per chunk, then
    closed with its digest; the registry holds exactly the bytes. Smaller ones go in one PUT."""
    import hashlib

    from layers import push
    from layers.registry import Client
    from tests.registryd import FaultyProxy
    monkeypatch.setattr(push, "CHUNK", 256 << 10)
    data = os.urandom((256 << 10) * 3 + 1000)
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    proxy = FaultyProxy(registry)
    try:
        client = Client(proxy.host, "rt/chunked", insecure=True, push=True)
        try:
            assert push.upload_blob(client, str(blob), digest, len(data)) == "uploaded"
            assert push.upload_blob(client, str(blob), digest, len(data)) == "exists"
            small = tmp_path / "small"
            small.write_bytes(b"small")
            small_digest = "sha256:" + hashlib.sha256(b"small").hexdigest()
            assert push.upload_blob(client, str(small), small_digest, 5) == "uploaded"
        finally:
            client.close()
        methods = [m for m, _p, _s in proxy.seen]
        assert methods.count("PATCH") == 4  # three full chunks and the rest
        assert methods.count("PUT") == 2  # the big blob's closing PUT, the small one's monolithic PUT
    finally:
        proxy.stop()
    with urllib.request.urlopen(f"http://{registry.host}/v2/rt/chunked/blobs/{digest}") as resp:
        assert resp.read() == data


def test_denied_and_rate_limited_pulls_name_the_reference(bb, registry):
    """403 is not retried and says access is denied; a 429 that never ends is retried, then named."""
    from tests.registryd import FaultyProxy
    bb("push", "-q", "busybox", f"{registry.host}/rt/limited:1")
    for status, words in ((403, "access denied by"), (429, "is limiting requests (429 Too Many Requests)")):
        proxy = FaultyProxy(registry, always={"/manifests/": status})
        try:
            bb.configure(insecure=(registry.host, proxy.host))
            ref = f"{proxy.host}/rt/limited:1"
            r = bb("pull", ref, expect=125)
            assert f"rootless: error: {ref} (manifest): " in r.err, r.err
            assert f"{words} {proxy.host}" in r.err if status == 403 else f"{proxy.host} {words}" in r.err
            assert "Traceback" not in r.err
            tries = [s for _m, p, s in proxy.seen if "/manifests/" in p]
            assert len(tries) == (1 if status == 403 else 4)
        finally:
            proxy.stop()


def test_one_off_insecure_login_run_and_create(rl, images, registry, tls_registry, auth_registry):
    """--tls-verify=false on login (a plain-HTTP registry nobody listed as insecure: on loopback it
    needs no flag either), run and create (a TLS registry declared secure whose CA is not installed)."""
    rl.load(images, "busybox")
    r = rl("login", "-u", "alice", "--password-stdin", auth_registry.host, input="s3cret\n")
    assert r.out == "Login Succeeded!\n"
    r = rl("login", "--tls-verify=false", "-u", "alice", "--password-stdin", auth_registry.host, input="s3cret\n")
    assert r.out == "Login Succeeded!\n"
    ref = f"{tls_registry.host}/secure/oneoff:1"
    declare_secure(rl, tls_registry.host)
    rl("push", "-q", "--tls-verify=false", "busybox", ref)
    r = rl("run", "--rm", ref, "true", expect=125)
    assert "TLS" in r.err
    assert rl("run", "--rm", "--tls-verify=false", ref, "echo", "unverified").out == "unverified\n"
    rl("rmi", ref)
    r = rl("create", "--name", "c1", ref, "true", expect=125)
    assert "TLS" in r.err
    rl("create", "--tls-verify=false", "--name", "c1", ref, "true")
    assert rl("start", "-a", "c1").code == 0


def test_a_built_image_saved_loads_into_podman_with_the_same_config(bb, podman, tmp_path):
    """`build`, `save`, then another tool's `load`: the same config (so the same image id) and
    the same layers, as `docker load` elsewhere would see them."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nCOPY hello.txt /srv/\nRUN adduser -D -u 1000 app 2>/dev/null || echo app:x:1000:1000::/:/bin/sh"
        " >> /etc/passwd; chown 1000 /srv/hello.txt\nENV MODE=built\nEXPOSE 8080\nUSER 1000\n"
        "LABEL org.example.kind=built\nCMD [\"cat\", \"/srv/hello.txt\"]\n")
    built = bb("build", "-q", "-t", "built:1", str(ctx), timeout=300).out.strip()
    archive = tmp_path / "built.tar"
    bb("save", "-o", str(archive), "built:1")
    podman("load", "-q", "-i", str(archive))
    assert podman("image", "inspect", "-f", "{{.Id}}", "built:1").stdout.strip() == built[7:]
    theirs = json.loads(podman("image", "inspect", "built:1").stdout)[0]
    assert theirs["Config"]["Cmd"] == ["cat", "/srv/hello.txt"] and theirs["Config"]["User"] == "1000"
    assert theirs["Config"]["Labels"]["org.example.kind"] == "built" and "MODE=built" in theirs["Config"]["Env"]
    assert len(theirs["RootFS"]["Layers"]) == 3  # busybox's, COPY's, RUN's
