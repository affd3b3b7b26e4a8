"""Slurm's own container support and one image for many nodes, on the test bed (issue 26):
``srun --container=BUNDLE`` through the bed's oci.conf (``rootless-runc``, the OCI face) with a
bundle from ``rootless bundle``, and an ``sbatch`` array of 8 tasks that run one image from a
shared read-only store filled once by ``rootless pull --store``: the registry serves one pull."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.conftest import Rootless, wait_for
from tests.registryd import Registry

pytestmark = pytest.mark.cluster


def test_srun_container_runs_a_rootless_bundle_on_two_nodes_through_oci_conf(loaded, tmp_path, images):
    c = loaded
    maker = Rootless(tmp_path)
    maker.load(images, "busybox")
    bundle = c.shared / "bundle"
    maker("bundle", "busybox", bundle)
    try:
        r = c.srun("-N2", "--ntasks-per-node=1", f"--container={bundle}", "hostname")
        assert sorted(r.out.split()) == sorted(c.nodes), r
        r = c.srun("-N2", "--ntasks-per-node=1", f"--container={bundle}", "sh", "-c", "exit 3", expect=None)
        assert r.code == 3, r
        # nothing of the OCI runtime's is left on a node: no container in its state directory
        left = c.by_node("ls -A /tmp/rootless-runc-$(id -un)/containers 2>/dev/null; echo checked")
        assert all(text == "checked" for text in left.values()), left
    finally:
        maker("unshare", "rm", "-rf", bundle, expect=None)


def test_scancel_of_a_container_step_leaves_no_container_on_either_node(loaded, tmp_path, images):
    import os
    import subprocess

    from tests.cluster.test_slurm import _processes_with
    c = loaded
    maker = Rootless(tmp_path)
    maker.load(images, "busybox")
    bundle = c.shared / "bundle-scancel"
    maker("bundle", "busybox", bundle)
    marker = f"sleep {4000 + os.getpid() % 1000}"
    name = f"rltest-occ-{c.key}"
    p = subprocess.Popen(["srun", "--quiet", f"--chdir={c.shared}", f"--job-name={name}", "-N2",
                          "--ntasks-per-node=1", f"--container={bundle}", *marker.split()],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=c.env, cwd=c.shared,
                         stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: len([x for x in _processes_with(marker) if x.split(": ", 1)[1].strip() == marker]) == 2,
                 60, "both containers' commands")
        subprocess.run(["scancel", "-n", name], check=True)
        p.communicate(timeout=60)
        wait_for(lambda: not _processes_with(marker), 10, f"no process of {marker}")
        left = c.by_node("ls -A /tmp/rootless-runc-$(id -un)/containers 2>/dev/null; echo checked")
        assert all(text == "checked" for text in left.values()), left
    finally:
        if p.poll() is None:
            subprocess.run(["scancel", "-n", name], check=False)
            p.kill()
            p.wait()
        maker("unshare", "rm", "-rf", bundle, expect=None)


def _gets(registry: Registry, kind: str) -> int:
    """The registry's GET requests for ``kind`` (``manifests`` or ``blobs``), from its access log."""
    text = (registry.base / "registry.log").read_text(errors="replace")
    return len(re.findall(rf'"GET /v2/[^ ]*/{kind}/[^ ]* HTTP', text))


@pytest.fixture
def shared_store(cluster, cluster_images, tmp_path):
    """A registry on the bed's bridge holding busybox, and a read-only store in the shared home
    filled from it once (``pull --store``)."""
    registry = Registry(tmp_path / "registry", address=cluster.host_address, access_log=True)
    filler = Rootless(tmp_path / "filler")
    filler.configure(insecure=(registry.host,))
    filler.load(cluster_images, "busybox")
    ref = f"{registry.host}/hpc/busybox:1"
    filler("tag", "busybox", ref)
    filler("push", "-q", ref)
    store = cluster.shared / "ro-store"
    assert filler("pull", "-q", "--store", store, ref).out.strip() == ref
    filler("unshare", "chmod", "-R", "a-w", store)
    cluster.configure(insecure=(registry.host,))
    try:
        yield registry, store, ref
    finally:
        registry.stop()
        filler("unshare", "chmod", "-R", "u+w", store, expect=None)
        filler("unshare", "rm", "-rf", store, expect=None)
        cluster.configure()


def test_an_array_of_8_tasks_runs_one_image_from_the_shared_store_with_one_pull_in_all(cluster, shared_store):
    c = cluster
    registry, store, ref = shared_store
    pulled = (_gets(registry, "manifests"), _gets(registry, "blobs"))
    assert pulled[0] >= 1 and pulled[1] >= 2  # pull --store: the manifest, the config and the layer
    before = _snapshot(store)
    script = c.shared / "array.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        exec {c.rootless} run --rm --network host {ref} sh -c 'echo "$(hostname) $0"' "$SLURM_ARRAY_TASK_ID"
        """))
    env = dict(c.env, ROOTLESS_ADDITIONAL_STORES=str(store))
    r = c.run(["sbatch", "--wait", "--quiet", "--array=0-7", f"--chdir={c.shared}", f"--job-name=rltest-{c.key}",
               f"--output={c.shared}/array-%a.out", str(script)], env=env, timeout=300, expect=None)
    outs = {i: (c.shared / f"array-{i}.out").read_text() if (c.shared / f"array-{i}.out").exists() else ""
            for i in range(8)}
    assert r.code == 0, (r, outs)
    for i, text in outs.items():
        node, _, task = text.strip().partition(" ")
        assert node in c.nodes and task == str(i), (i, text)
    # no task went to the registry: the image came from the shared store, in place
    assert (_gets(registry, "manifests"), _gets(registry, "blobs")) == pulled
    assert _snapshot(store) == before  # nothing was written into the shared store


def _snapshot(path: Path) -> dict:
    return {str(p): (p.lstat().st_mode, p.lstat().st_size, p.lstat().st_mtime_ns) for p in path.rglob("*")}
