"""A build's RUN steps without durability they do not need (issue 25): the writable layer of a
step is mounted ``volatile``, and with the kernel overlay it becomes the step's stored layer
itself (settled, renamed), not a second copy unpacked from its tar; the tar is still the blob."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Rootless, inspect

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    yield rl
    assert rl("ps", "-aq").out.split() == [], "a build step's container was left behind"
    assert not rl.leftovers()
    tmp = rl.root / "tmp"
    assert not [p for p in tmp.iterdir() if p.name.startswith("build-")] if tmp.is_dir() else True


def _method(rl: Rootless) -> str:
    return json.loads((rl.root / "probe.json").read_text())["method"]


def _context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def test_run_steps_writable_layer_is_mounted_volatile(bb, tmp_path):
    ctx = _context(tmp_path, 'FROM busybox\nRUN grep " / " /proc/mounts\n')
    r = bb("build", "--network", "none", "-t", "vol", str(ctx), timeout=300)
    if _method(bb) != "kernel":
        pytest.skip("fuse-overlayfs does not show its options in /proc/mounts")
    root_line = next(line for line in r.err.splitlines() if line.startswith("overlay / "))
    assert "volatile" in root_line  # shown as fsync=volatile


def test_a_run_steps_layer_is_its_writable_layer_kept(bb, tmp_path):
    """With the kernel overlay the file a RUN step made is the very inode of the stored layer
    (renamed into the store, not unpacked again), and the layer still is its blob's unpacking:
    the next step, the image and a save see the same files."""
    ctx = _context(tmp_path, "FROM busybox\n"
                             "RUN echo made > /made && mkdir -p /d/sub && ln /made /d/hard && "
                             "ln -s ../made /d/link && rm /bin/true && stat -c 'INODE=%i' /made\n"
                             "RUN test \"$(cat /d/hard)\" = made && ! test -e /bin/true && ls /d\n")
    r = bb("build", "--network", "none", "-t", "kept", str(ctx), timeout=300)
    if _method(bb) != "kernel":
        pytest.skip("only the kernel overlay's writable layer is kept as the layer")
    inode = int(re.search(r"INODE=(\d+)", r.err).group(1))
    layers = inspect(bb, "kept")["RootFS"]["Layers"]
    made = bb.root / "layers" / layers[1].partition(":")[2] / "made"
    assert made.stat().st_ino == inode
    assert made.stat().st_mtime == int(made.stat().st_mtime)  # whole seconds, as the tar has it
    bb("save", "-o", str(tmp_path / "kept.tar"), "kept")  # the layer's tar, re-created from its tree
    with tarfile.open(tmp_path / "kept.tar") as tf:
        blob = tf.extractfile(f"blobs/sha256/{layers[1].partition(':')[2]}").read()
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == layers[1]
    assert bb("run", "--rm", "--network", "none", "kept", "cat", "/d/link").out == "made\n"
    again = bb("build", "--network", "none", "-t", "kept", str(ctx), timeout=300)
    assert inspect(bb, "kept")["Id"] == again.out.strip().splitlines()[-1]


_SPY = """
import sys
from layers.store import ImageStore
unpack = ImageStore.unpack_layers
def spy(self, layers):
    print("UNPACK " + " ".join(lr.diff_id for lr in layers), file=sys.stderr, flush=True)
    return unpack(self, layers)
ImageStore.unpack_layers = spy
from rootless.cli.main import main
sys.argv = ["rootless", *sys.argv[1:]]
main()
"""


def test_run_and_copy_layers_are_not_unpacked_again(bb, tmp_path):
    """Neither a RUN step's nor a COPY step's layer is unpacked from its blob: the writable layer
    it was made in is the layer (kernel overlay). The image is what it was."""
    ctx = _context(tmp_path, "FROM busybox\nCOPY a /a\nRUN cat /a > /b\nCOPY dir/ /dir/\n")
    (ctx / "a").write_text("from the context\n")
    (ctx / "dir").mkdir()
    (ctx / "dir" / "f").write_text("f\n")
    p = subprocess.run([sys.executable, "-c", _SPY, "build", "--network", "none", "-t", "spied", str(ctx)],
                       env=bb.env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    if _method(bb) != "kernel":
        pytest.skip("only the kernel overlay's writable layer is kept as the layer")
    layers = inspect(bb, "spied")["RootFS"]["Layers"]
    unpacked = {d for line in p.stderr.splitlines() if line.startswith("UNPACK ") for d in line.split()[1:]}
    assert len(layers) == 4 and not unpacked & set(layers[1:])
    out = bb("run", "--rm", "--network", "none", "spied", "cat", "/a", "/b", "/dir/f").out
    assert out == "from the context\nfrom the context\nf\n"


def test_a_file_named_like_a_whiteout_is_one_in_the_next_step(bb, tmp_path):
    """A ``.wh.NAME`` file a step makes is a whiteout in its tar (and ``x`` after it in the tar
    is made again); the layer is then unpacked from the tar, as before, so the next step sees what
    the image will hold."""
    ctx = _context(tmp_path, "FROM busybox\n"
                             "RUN mkdir /d && touch /d/keep /d/x /d/.wh.x && echo ok\n"
                             "RUN ls -a /d > /listing\n"
                             'CMD ["cat", "/listing"]\n')
    bb("build", "--network", "none", "-t", "wh", str(ctx), timeout=300)
    assert bb("run", "--rm", "--network", "none", "wh").out.split() == [".", "..", "keep", "x"]


def test_iidfile_and_the_legacy_builders_flags(bb, tmp_path):
    """``--iidfile`` gets the image id as Docker writes it (``sha256:...``); ``--rm``, ``--rm=true``,
    ``--force-rm`` and ``--compress`` (scripts of Docker's classic builder pass them) are accepted."""
    ctx = _context(tmp_path, "FROM busybox\nRUN echo x > /x\n")
    iid = tmp_path / "iid"
    r = bb("build", "--rm", "--force-rm", "--compress", "--iidfile", str(iid), "--network", "none", "-t", "iid",
           str(ctx), timeout=300)
    assert iid.read_text() == r.out.strip() == "sha256:" + inspect(bb, "iid")["Id"].removeprefix("sha256:")
    bb("build", "--rm=true", "-q", "--network", "none", str(ctx), timeout=300)
    bad = bb("build", "--iidfile", str(tmp_path / "no" / "iid"), "-q", "--network", "none", str(ctx), expect=125)
    assert "failed to write the image ID file" in bad.err and "Traceback" not in bad.err
