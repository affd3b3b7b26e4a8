"""The Slurm test bed's tests (issue 26): a real multi-node cluster on this machine, brought up as
root by ``scripts/slurm-testbed.sh up`` (``.ci/run`` does it before the suite). The tests run as
an unprivileged Slurm user and skip, in one line, where the bed is not up.

What a test reaches from where: the home is shared by every node (the session's directory
``~/.cache/rootless-tests/cluster/KEY`` holds images, configs and scripts); each node's /tmp is
its own (the store of a job, ``/tmp/rlcluster-KEY/store``, is node-local); processes are visible
from the host (the nodes share its pid namespace), so the host checks that none are left.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, Result

STATE = Path(os.environ.get("ROOTLESS_SLURM_TESTBED", "/run/rootless-slurm-testbed"))


def testbed() -> dict[str, str] | None:
    """The state file ``slurm-testbed.sh up`` writes (KEY=VALUE lines), or None when it is down."""
    try:
        text = STATE.read_text()
    except OSError:
        return None
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def pytest_collection_modifyitems(config, items):
    state = testbed()
    reason = None
    if state is None:
        reason = f"the Slurm test bed is not up ({STATE} missing): as root, scripts/slurm-testbed.sh up"
    elif not shutil.which("srun"):
        reason = "srun is missing: the Slurm test bed's client (scripts/slurm-testbed.sh up installs it)"
    elif os.geteuid() == 0:
        reason = "the cluster tests run as an unprivileged Slurm user, not root"
    for item in items:
        if item.get_closest_marker("cluster") and reason:
            item.add_marker(pytest.mark.skip(reason=reason))


class Cluster:
    """``srun``/``sbatch`` as this user, with a node-local store and a config in the shared home."""

    def __init__(self, state: dict[str, str], shared: Path, key: str):
        self.state = state
        self.nodes = state["nodes"].split()
        self.host_address = state["host_address"]
        self.shared = shared
        self.key = key
        self.local = f"/tmp/rlcluster-{key}"  # on each node: its own /tmp
        self.store = f"{self.local}/store"
        self.config = shared / "config.toml"
        self.rootless = os.path.join(os.path.dirname(sys.executable), "rootless")
        self.configure()

    def configure(self, insecure: tuple[str, ...] = ()) -> None:
        text = "[registries]\ninsecure = [" + ", ".join(f'"{h}"' for h in insecure) + "]\n"
        text += '\n[registries."docker.io"]\nblocked = true\n'
        self.config.write_text(text)

    @property
    def env(self) -> dict[str, str]:
        """A batch job's environment: no XDG_RUNTIME_DIR (srun carries the caller's environment)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("XDG_RUNTIME_DIR", "TMPDIR") and not k.startswith(("SLURM_", "ROOTLESS_"))}
        env.update(ROOTLESS_ROOT=self.store, ROOTLESS_CONFIG=str(self.config),
                   PATH=os.path.dirname(self.rootless) + os.pathsep + env.get("PATH", "/usr/bin:/bin"))
        return env

    def run(self, argv: list[str], timeout: float = 180, expect: int | None = 0, env=None) -> Result:
        try:
            cp = subprocess.run(argv, capture_output=True, timeout=timeout, env=env or self.env, cwd=self.shared,
                                stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"timed out after {timeout}s: {shlex.join(argv)}\nstdout: {e.stdout!r}\nstderr: {e.stderr!r}")
        res = Result(argv, cp.returncode, cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace"))
        if expect is not None and res.code != expect:
            pytest.fail(f"{shlex.join(argv)}\nexit code {res.code}, expected {expect}\n"
                        f"--- stdout\n{res.out}\n--- stderr\n{res.err}")
        return res

    def srun(self, *args: str, **kw) -> Result:
        return self.run(["srun", "--quiet", f"--chdir={self.shared}", f"--job-name=rltest-{self.key}", *args], **kw)

    def on_nodes(self, script: str, nodes: int = 2, **kw) -> Result:
        """``script`` (sh) once on each of ``nodes`` nodes."""
        return self.srun(f"-N{nodes}", "--ntasks-per-node=1", "sh", "-c", script, **kw)

    def by_node(self, script: str, **kw) -> dict[str, str]:
        """``script``'s output on each node: {node: output}; each line it prints is prefixed
        with the node's name here."""
        out = self.on_nodes(f'( {script} ) 2>&1 | sed "s/^/$(hostname): /"', **kw).out
        found: dict[str, list[str]] = {n: [] for n in self.nodes}
        for line in out.splitlines():
            node, _, rest = line.partition(": ")
            found.setdefault(node, []).append(rest)
        return {n: "\n".join(lines) for n, lines in found.items()}

    def load(self, image_tar: Path) -> None:
        self.on_nodes(f"{self.rootless} load -i {image_tar} >/dev/null")


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    state = testbed()
    assert state is not None  # the collection hook skipped the tests otherwise
    key = uuid.uuid4().hex[:8]
    shared = Path.home() / ".cache" / "rootless-tests" / "cluster" / key
    shared.mkdir(parents=True)
    c = Cluster(state, shared, key)
    yield c
    # each node's store (layers owned by subordinate ids: removed by rootless itself), then the rest
    c.on_nodes(f"[ -d {c.store} ] && {c.rootless} system reset --force >/dev/null; rm -rf {c.local}",
               expect=None, timeout=120)
    shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster_images(cluster: Cluster) -> Path:
    """The busybox test images, in the shared home."""
    from tests.conftest import BUSYBOX, _load_mkimages
    out = cluster.shared / "images"
    _load_mkimages().build_all(str(out), BUSYBOX, only={"busybox"})
    return out


@pytest.fixture(scope="session")
def loaded(cluster: Cluster, cluster_images: Path) -> Cluster:
    """busybox in every node's store."""
    cluster.load(cluster_images / "busybox.tar")
    return cluster


__all__ = ["REPO", "Cluster"]
