"""One image for many nodes: a read-only image store on a shared filesystem, filled once with
``pull --store`` and used beside each user's own store (``storage.additional_stores`` or
``ROOTLESS_ADDITIONAL_STORES``): listed, run and bundled from in place, never written, never
pulled again."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import Rootless, one_error
from tests.registryd import Registry

pytestmark = pytest.mark.userns


class Shared:
    def __init__(self, store: Path, ref: str, image_id: str, registry: Registry, user: Rootless):
        self.store, self.ref, self.image_id, self.registry, self.user = store, ref, image_id, registry, user


@pytest.fixture
def shared(tmp_path, images):
    """A store filled by ``pull --store`` from a registry of this test's own, made read-only
    (``chmod -R a-w``), and a user (another storage root) that lists it in its config."""
    registry = Registry(tmp_path / "registry")
    filler = Rootless(tmp_path / "filler")
    filler.configure(insecure=(registry.host,))
    filler.load(images, "busybox")
    ref = f"{registry.host}/hpc/busybox:1"
    filler("tag", "busybox", ref)
    filler("push", "-q", ref)
    store = tmp_path / "shared"
    r = filler("pull", "-q", "--store", store, ref)
    assert r.out.strip() == ref
    image_id = json.loads((store / "images.json").read_text())["images"].popitem()[0]
    for d in (store, store / "blobs", store / "blobs" / "sha256", store / "layers"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755, d  # readable by others, as shared stores must be
    for f in [store / "images.json", *(store / "blobs" / "sha256").iterdir()]:
        assert f.stat().st_mode & 0o044 == 0o044, f
    filler("unshare", "chmod", "-R", "a-w", store)  # read-only: nothing may be made there, not even a lock
    user = Rootless(tmp_path / "user")
    user.configure(insecure=(registry.host,))
    _add_stores(user, store)
    yield Shared(store, ref, image_id, registry, user)
    registry.stop()
    filler("unshare", "chmod", "-R", "u+w", store, expect=None)


def _add_stores(rl: Rootless, *stores) -> None:
    text = rl.config.read_text().replace("[storage]\n", "[storage]\nadditional_stores = [" +
                                         ", ".join(f'"{s}"' for s in stores) + "]\n", 1)
    rl.config.write_text(text)


def _snapshot(path: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def test_images_lists_the_shared_store_and_inspect_marks_it(shared):
    user = shared.user
    assert shared.image_id in user("images", "-q", "--no-trunc").out.split()
    assert shared.ref.rpartition(":")[0] in user("images").out
    info = json.loads(user("image", "inspect", shared.ref).out)[0]
    assert info["Id"] == shared.image_id
    assert info["ReadOnly"] is True and info["Store"] == str(shared.store)
    own = user.root / "images.json"
    assert not own.exists() or shared.image_id not in own.read_text()  # listed, not copied


def test_run_uses_its_layers_in_place_without_the_registry(shared):
    user = shared.user
    before = _snapshot(shared.store)
    shared.registry.stop()  # no registry: the image must come from the shared store
    r = user("run", "--rm", shared.ref, "sh", "-c", "echo from-shared; touch /new && ls /new")
    assert r.out.split() == ["from-shared", "/new"]
    user("create", "--name", "c1", shared.ref, "true")
    user("start", "-a", "c1")
    r = user("system", "check", expect=None)
    assert r.code == 0 and "is consistent" in r.out, r  # its image is not "gone": the shared store has it
    user("rm", "c1")
    layers = user.root / "layers"
    assert [p.name for p in layers.iterdir()] == []  # nothing of the image unpacked into the own store
    assert list((user.root / "blobs" / "sha256").iterdir()) == []
    assert _snapshot(shared.store) == before  # the shared store is never written
    images_row = next(ln.split() for ln in user("system", "df").out.splitlines() if ln.startswith("Images"))
    assert images_row[1:3] == ["0", "0"]  # system df counts the own store only


def test_env_var_overrides_the_config(shared, tmp_path):
    user = shared.user
    env_user = Rootless(tmp_path / "envuser")
    env = env_user.env
    env["ROOTLESS_ADDITIONAL_STORES"] = f"/nonexistent-store:{shared.store}"
    import subprocess

    from tests.conftest import rootless_argv
    cp = subprocess.run(rootless_argv() + ["images", "-q", "--no-trunc"], env=env, capture_output=True, text=True,
                        stdin=subprocess.DEVNULL, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == [shared.image_id]
    assert cp.stderr.count("warning") == 1 and "/nonexistent-store" in cp.stderr
    env["ROOTLESS_ADDITIONAL_STORES"] = ""  # set empty: the config's stores are not used either
    cp = subprocess.run(rootless_argv() + ["images", "-q"], env=dict(user.env, ROOTLESS_ADDITIONAL_STORES=""),
                        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert cp.returncode == 0 and cp.stdout.strip() == "", cp


def test_rmi_and_tag_are_refused_in_one_line(shared):
    user = shared.user
    before = _snapshot(shared.store)
    r = user("rmi", shared.ref, expect=None)
    assert r.code != 0
    msg = one_error(r, "read-only image store", str(shared.store))
    assert "Traceback" not in r.err, msg
    r = user("tag", shared.ref, "mine:1", expect=None)
    assert r.code != 0 and "read-only image store" in r.err and "Traceback" not in r.err
    assert shared.image_id in user("images", "-q", "--no-trunc").out
    assert _snapshot(shared.store) == before


def test_a_store_of_another_id_map_is_refused(shared, tmp_path):
    other = tmp_path / "othermap"
    for d in ("layers", "blobs/sha256"):
        (other / d).mkdir(parents=True)
    (other / "images.json").write_text('{"version": 1, "images": {}}')
    (other / "idmap.json").write_text('{"key": "subid uid=0:4242:1,1:300000:65536 gid=0:4242:1,1:300000:65536"}')
    user = Rootless(tmp_path / "mapuser")
    _add_stores(user, other)
    r = user("images", expect=125)
    one_error(r, str(other), "another id map")
    assert "subordinate ranges" in r.err and "Traceback" not in r.err


def test_pull_store_reads_no_other_store(shared, tmp_path):
    """Filling a store ignores the user's additional stores: a refused one does not stop it, and
    an image they have is pulled into it all the same."""
    user = shared.user
    bad = tmp_path / "othermap"
    for d in ("layers", "blobs/sha256"):
        (bad / d).mkdir(parents=True)
    (bad / "images.json").write_text('{"version": 1, "images": {}}')
    (bad / "idmap.json").write_text('{"key": "single uid=0:4242:1 gid=0:4242:1"}')
    user.configure(insecure=(shared.registry.host,))
    _add_stores(user, bad)
    one_error(user("images", expect=125), "another id map")
    second = tmp_path / "second"
    r = user("pull", "-q", "--store", second, shared.ref)
    assert r.out.strip() == shared.ref and "warning" not in r.err
    assert len(list((second / "layers").iterdir())) == 1


def test_a_missing_store_is_one_warning_and_the_own_store_works(busybox, tmp_path):
    _add_stores(busybox, tmp_path / "gone")
    r = busybox("run", "--rm", "busybox", "echo", "ok")
    assert r.out == "ok\n"
    warnings = [line for line in r.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and str(tmp_path / "gone") in warnings[0], r.err
    r = busybox("images", "-q")
    assert len(r.out.split()) == 1


def test_bundle_from_the_shared_store(shared, tmp_path):
    user = shared.user
    shared.registry.stop()
    dest = tmp_path / "bundle"
    user("bundle", shared.ref, dest)
    assert (dest / "rootfs" / "bin" / "busybox").exists()
    cfg = json.loads((dest / "config.json").read_text())
    assert cfg["annotations"]["io.rootless.image.id"] == shared.image_id
    assert list((user.root / "layers").iterdir()) == []
    user("unshare", "rm", "-rf", dest)


def test_an_image_built_on_a_shared_one_mixes_both_stores(shared, tmp_path):
    """A build FROM an image of the shared store: its RUN step runs on the shared layers, the new
    layer is the own store's, and a container of the result stacks layers of both stores."""
    user = shared.user
    shared.registry.stop()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {shared.ref}\nRUN echo built > /own\n")
    user("build", "-q", "--network", "none", "-t", "mixed:1", ctx)
    assert len(list((user.root / "layers").iterdir())) == 1  # the RUN step's layer alone
    r = user("run", "--rm", "mixed:1", "sh", "-c", "cat /own; ls /bin/busybox")
    assert r.out.split() == ["built", "/bin/busybox"]
    user("save", "-o", tmp_path / "mixed.tar", "mixed:1")  # its blobs read from both stores
    other = Rootless(tmp_path / "other")
    other("load", "-i", tmp_path / "mixed.tar")
    assert other("run", "--rm", "mixed:1", "cat", "/own").out == "built\n"


def test_the_docker_api_sees_and_runs_the_shared_image(shared):
    """Through ``rootless system service``: the docker CLI lists the image, runs it with the
    registry stopped, and its rmi is Docker's conflict (409), the store unchanged."""
    from tests.apiservice import DOCKER, ApiService
    if not os.access(DOCKER, os.X_OK):
        pytest.skip(f"{DOCKER} is missing (apt-get install docker.io)")
    shared.registry.stop()
    before = _snapshot(shared.store)
    api = ApiService(shared.user, "--time", "0")
    try:
        r = api.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
        assert r.out == f"{shared.ref} {shared.image_id[7:19]}\n"
        assert api.docker("run", "--rm", shared.ref, "echo", "via-api").out == "via-api\n"
        status, body = api.request("DELETE", f"/images/{shared.ref}")
        assert status == 409 and "read-only image store" in body["message"]
    finally:
        api.stop()
    assert _snapshot(shared.store) == before
