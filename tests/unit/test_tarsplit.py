"""The layer recipe (layers.tarsplit) on its own: split a tar against its unpacked tree, re-create
it byte for byte, and refuse a changed tree or a damaged recipe with one clear error. These run
as any user (no device nodes, no whiteouts: those need the user namespace, see
tests/e2e/test_tarsplit.py)."""

import hashlib
import io
import os
import tarfile

import pytest

from layers import tarsplit
from layers.unpack import unpack_layer
from rootless.base.errors import RootlessError


def _member(name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE, linkname: str = "",
            mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes | None]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = kind, linkname, mode, 1767225600
    ti.uid = ti.gid = os.getuid()
    if data is not None:
        ti.size = len(data)
    return ti, data


def _tar(*members: tuple, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


LAYERS = {
    "plain": _tar(_member("d", kind=tarfile.DIRTYPE, mode=0o755), _member("d/a", b"alpha\n" * 3000),
                  _member("d/empty", b""), _member("d/link", kind=tarfile.SYMTYPE, linkname="a")),
    "duplicate": _tar(_member("a", b"first"), _member("h", kind=tarfile.LNKTYPE, linkname="a"),
                      _member("a", b"other"), _member("b", b"first")),
    "gnu-long": _tar(_member("n" * 200, b"long\n"), fmt=tarfile.GNU_FORMAT) + b"\0" * 1024 + b"junk",
    "not-a-tar-after-a-while": _tar(_member("x", b"x" * 700)) + os.urandom(3000),
}


def _split(tmp_path, layer: bytes, record: bool = False):
    """``record``: the unpacking says what it wrote (as the store's does); else the splitter
    compares each member with the tree (a build step's settled layer, a layer unpacked before)."""
    blob = tmp_path / "blob"
    blob.write_bytes(layer)
    tree = tmp_path / "tree"
    tree.mkdir()
    written: list | None = [] if record else None
    unpack_layer(str(blob), str(tree), written=written)
    recipe = tmp_path / "blob.tarsplit"
    referenced = tarsplit.split(str(blob), str(tree), str(recipe), str(tmp_path / "tmp"), written=written)
    blob.unlink()
    return tree, recipe, referenced


def _rebuild(tmp_path, recipe, tree, layer: bytes) -> bytes:
    out = tmp_path / "out"
    with open(out, "wb") as f:
        n = tarsplit.rebuild(str(recipe), str(tree), "sha256:" + hashlib.sha256(layer).hexdigest(), f.fileno())
    data = out.read_bytes()
    assert n == len(data)
    return data


@pytest.mark.parametrize("record", [True, False], ids=["recorded", "compared"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_split_then_rebuild_is_byte_identical(tmp_path, name, record):
    layer = LAYERS[name]
    tree, recipe, referenced = _split(tmp_path, layer, record)
    assert tarsplit.tar_size(str(recipe)) == len(layer)
    assert _rebuild(tmp_path, recipe, tree, layer) == layer
    if name == "plain":
        assert referenced == 6 * 3000 and recipe.stat().st_size < 1000


@pytest.mark.parametrize("record", [True, False], ids=["recorded", "compared"])
def test_duplicates_keep_what_the_tree_lost(tmp_path, record):
    """The first ``a`` is gone from the tree (the hard link ``h`` holds it): its bytes stay in
    the recipe; ``b`` and the last ``a`` are the tree's."""
    tree, recipe, referenced = _split(tmp_path, LAYERS["duplicate"], record)
    assert referenced == len(b"other") + len(b"first")


def test_a_changed_file_of_the_same_size_fails_on_the_digest(tmp_path):
    layer = LAYERS["plain"]
    tree, recipe, _ = _split(tmp_path, layer)
    os.chmod(tree / "d", 0o755)
    (tree / "d" / "a").write_bytes(b"ALPHA\n" * 3000)
    with pytest.raises(tarsplit.LayerChanged, match="changed since the layer was unpacked"):
        _rebuild(tmp_path, recipe, tree, layer)


def test_a_file_of_another_size_fails_before_anything_is_written(tmp_path):
    layer = LAYERS["plain"]
    tree, recipe, _ = _split(tmp_path, layer)
    (tree / "d" / "a").unlink()
    (tree / "d" / "a").symlink_to("empty")
    out = tmp_path / "out"
    with open(out, "wb") as f, pytest.raises(tarsplit.LayerChanged, match="/d/a is gone or changed size"):
        tarsplit.rebuild(str(recipe), str(tree), "sha256:" + hashlib.sha256(layer).hexdigest(), f.fileno())
    assert out.read_bytes() == b""


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not-a-recipe"])
def test_a_damaged_recipe_is_one_error(tmp_path, damage):
    layer = LAYERS["plain"]
    tree, recipe, _ = _split(tmp_path, layer)
    data = recipe.read_bytes()
    recipe.write_bytes({"truncated": data[: len(data) // 2], "garbage": data[:16] + os.urandom(200),
                        "not-a-recipe": b"hello"}[damage])
    with pytest.raises(RootlessError) as e:
        _rebuild(tmp_path, recipe, tree, layer)
    assert "recipe" in str(e.value) or "changed" in str(e.value)


# ---- two processes unpacking one uncompressed layer at once (concurrent first runs of an image) --
def _racing_store(tmp_path):
    """A store holding one uncompressed layer blob, and two jobs for it made before either ran."""
    from layers.store import ImageStore, LayerRef
    from rootless.base.paths import Paths
    layer = LAYERS["plain"]
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    paths = Paths(str(tmp_path / "store"), str(tmp_path / "run"))
    paths.ensure()
    store = ImageStore(paths, userns_call=lambda fn, *a: fn(*a), idmap_key="k")
    with open(store.paths.blob(digest), "wb") as f:
        f.write(layer)
    lr = LayerRef(digest, digest, "application/vnd.oci.image.layer.v1.tar")
    jobs = [store.unpack_job(lr), store.unpack_job(lr)]
    assert "split" in jobs[0]  # kept as tree + recipe, the tar dropped
    return store, digest, jobs


def test_a_layer_unpacked_and_split_by_another_process_before_this_one_opened_its_tar(tmp_path):
    from layers import layertrees
    store, digest, (first, second) = _racing_store(tmp_path)
    layertrees._unpack_jobs([first])  # the other process: tree, recipe, tar gone
    assert not os.path.exists(store.paths.blob(digest))
    assert layertrees._unpack_jobs([second]) == [{"diff_id": digest, "size": 0}]
    assert os.path.isfile(os.path.join(store.paths.layer(digest), "d", "a"))
    assert [n for n in os.listdir(store.paths.layers) if n.startswith(".tmp")] == []


def test_a_layer_split_by_another_process_while_this_one_unpacked_it(tmp_path, monkeypatch):
    from layers import layertrees
    store, digest, (first, second) = _racing_store(tmp_path)
    split = tarsplit.split

    def other_wins(tar, tree, recipe, tmp, **kw):  # the other process finishes before this split reads the tar
        monkeypatch.setattr(tarsplit, "split", split)
        layertrees._unpack_jobs([first])
        return split(tar, tree, recipe, tmp, **kw)

    monkeypatch.setattr(tarsplit, "split", other_wins)
    [res] = layertrees._unpack_jobs([second])
    assert res["diff_id"] == digest and res["size"] > 0
    tree = store.paths.layer(digest)
    assert os.path.isfile(os.path.join(tree, "d", "a")) and not os.path.exists(store.paths.blob(digest))
    with open(tmp_path / "out", "wb") as f:  # the recipe still makes the layer's tar
        tarsplit.rebuild(store.paths.blob(digest) + ".tarsplit", tree, digest, f.fileno())
    assert (tmp_path / "out").read_bytes() == LAYERS["plain"]
    assert [n for n in os.listdir(store.paths.layers) if n.startswith(".tmp")] == []


def test_a_pull_that_followed_its_download_into_the_store_after_another_process_split_it(tmp_path):
    """A pull's unpacking follows the download's file, then the stored blob once it was renamed
    there: another process's first run may have split that blob (tree, recipe, tar dropped)."""
    from layers import layertrees
    from layers.store import LayerRef
    store, digest, (first, _) = _racing_store(tmp_path)
    lr = LayerRef(digest, digest, "application/vnd.oci.image.layer.v1.tar")
    pulling = store.unpack_job(lr, growing=str(tmp_path / "download-renamed-away"), size=len(LAYERS["plain"]),
                               commit=False)
    layertrees._unpack_jobs([first])
    assert layertrees._unpack_jobs([pulling]) == [{"diff_id": digest, "size": 0}]
    store.commit_layer(pulling)  # the layer is there: nothing to move
    assert os.path.isfile(os.path.join(store.paths.layer(digest), "d", "a"))
    assert [n for n in os.listdir(store.paths.layers) if n.startswith(".tmp")] == []


@pytest.mark.parametrize("chunk", [1, 7, 512, 10240, 1 << 20])
def test_a_recipe_made_while_the_tar_is_written_matches_a_split_one(tmp_path, chunk):
    """RecipeStream: the tar's bytes arrive in chunks of any size across the claimed runs (each
    claimed before its first byte arrives); the recipe re-creates the tar byte for byte."""
    layer = LAYERS["plain"]
    tree, _recipe, _ = _split(tmp_path, layer)
    claims = []
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:") as tf:
        for m in tf:
            if m.isreg() and m.size:
                claims.append((m.offset_data, m.size, m.name))
    path = tmp_path / "streamed.tarsplit"
    with open(path, "wb") as out:
        w = tarsplit.RecipeWriter(out)
        s = tarsplit.RecipeStream(w)
        pos = 0
        while pos < len(layer):
            while claims and claims[0][0] < pos + chunk:
                s.claim(*claims.pop(0))
            s.write(layer[pos:pos + chunk])
            pos += chunk
        w.finish()
    assert tarsplit.tar_size(str(path)) == len(layer)
    assert _rebuild(tmp_path, path, tree, layer) == layer
    assert w.referenced == 6 * 3000


def test_a_claim_behind_what_was_written_is_refused(tmp_path):
    with open(tmp_path / "r", "wb") as out:
        s = tarsplit.RecipeStream(tarsplit.RecipeWriter(out))
        s.write(b"x" * 1024)
        with pytest.raises(RootlessError, match="out of order"):
            s.claim(512, 10, "a")


def test_a_file_whose_path_is_too_long_for_a_reference_stays_in_the_recipe(tmp_path):
    """A reference holds a path of at most 65535 bytes; a deeper file (a build step can make one)
    keeps its bytes in the recipe, whether split or streamed."""
    deep = "/".join(["d" * 250] * 270)  # 67769 bytes
    layer = _tar(_member("a", b"alpha" * 100), _member(deep + "/f", b"deep contents" * 50))
    blob = tmp_path / "blob"
    blob.write_bytes(layer)
    recipe = tmp_path / "split.tarsplit"
    referenced = tarsplit.split(str(blob), _unpacked(tmp_path, layer), str(recipe), str(tmp_path / "tmp"))
    assert referenced == 500
    streamed = tmp_path / "streamed.tarsplit"
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:") as tf:
        claims = [(m.offset_data, m.size, m.name) for m in tf if m.isreg()]
    with open(streamed, "wb") as out:
        w = tarsplit.RecipeWriter(out)
        s = tarsplit.RecipeStream(w)
        for c in claims:
            s.claim(*c)
        s.write(layer)
        w.finish()
    assert w.referenced == 500
    for r in (recipe, streamed):
        assert _rebuild(tmp_path, r, tmp_path / "u", layer) == layer


def _unpacked(tmp_path, layer: bytes) -> str:
    """The layer unpacked by descriptor into ``tmp_path/u`` (its path is longer than PATH_MAX)."""
    tree = tmp_path / "u"
    tree.mkdir()
    src = tmp_path / "src.tar"
    src.write_bytes(layer)
    unpack_layer(str(src), str(tree))
    return str(tree)
