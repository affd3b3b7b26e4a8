"""Tests for layers/store.py without user namespaces: blobs, the image index, tags and id maps."""

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from layers.store import ImageStore, LayerRef
from rootless.base.errors import Conflict, ImageNotFound, InvalidImage, RootlessError
from rootless.base.paths import Paths

BUSYBOX = "docker.io/library/busybox:latest"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_bytes(n: int) -> bytes:
    return json.dumps({"created": f"2025-01-0{n % 9 + 1}T00:00:00Z", "n": n}).encode()


def layer(n: int) -> LayerRef:
    return LayerRef(diff_id=sha(b"diff%d" % n), blob=sha(b"blob%d" % n),
                    media_type="application/vnd.oci.image.layer.v1.tar+gzip", size=100 * n)


@pytest.fixture
def paths(tmp_path) -> Paths:
    p = Paths(root=str(tmp_path / "store"), runroot=str(tmp_path / "run"))
    p.ensure()
    return p


@pytest.fixture
def store(paths) -> ImageStore:
    return ImageStore(paths, userns_call=lambda fn, *a: fn(*a), idmap_key="k")


def register(store: ImageStore, n: int, *tags: str) -> dict:
    rec, _ = store.register(config_bytes(n), [layer(n)], list(tags))
    return rec


# ---- blobs ---------------------------------------------------------------------------
def test_put_blob(store, paths):
    data = b"x" * 3_000_000
    digest, size, added = store.put_blob(io.BytesIO(data), expected=sha(data), expected_size=len(data))
    assert (digest, size, added) == (sha(data), len(data), True)
    assert store.has_blob(digest) and store.read_blob(digest) == data
    assert store.put_blob(io.BytesIO(data), expected=sha(data)) == (digest, len(data), False)
    assert os.listdir(paths.tmp) == []
    assert store.put_blob_bytes(b"small") == (sha(b"small"), True)


@pytest.mark.parametrize("expected, expected_size, message", [
    (sha(b"other"), None, "does not match"),
    ("sha256:" + "0" * 64, 4, "digest"),
    (None, 5, "size 4 does not match the descriptor's 5"),
    (sha(b"data"), 3, "size 4 does not match"),
])
def test_put_blob_mismatch_leaves_nothing(store, paths, expected, expected_size, message):
    with pytest.raises(InvalidImage, match=message):
        store.put_blob(io.BytesIO(b"data"), expected=expected, expected_size=expected_size, what="layer x")
    assert os.listdir(paths.blobs) == []
    assert os.listdir(paths.tmp) == []
    assert not store.has_blob(sha(b"data"))


@pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "0" * 64, "sha256:" + "G" * 64, "../../etc"])
def test_blob_paths_refuse_bad_digests(store, digest):
    with pytest.raises(RootlessError, match="invalid digest"):
        store.has_blob(digest)


# ---- register and resolve ----------------------------------------------------------------
def test_register_records_the_image(store):
    rec, moved = store.register(config_bytes(1), [layer(1), layer(2)], [BUSYBOX], manifest_digest=sha(b"m"))
    assert moved == [BUSYBOX]
    assert rec["id"] == sha(config_bytes(1))
    assert rec["layers"] == [layer(1).to_json(), layer(2).to_json()]
    assert rec["repo_tags"] == [BUSYBOX] and rec["size"] == 300
    assert rec["created"] == "2025-01-02T00:00:00Z" and rec["manifest_digest"] == sha(b"m")
    assert store.images() == [rec]


def test_register_again_adds_tags_once(store):
    register(store, 1, BUSYBOX)
    rec = register(store, 1, BUSYBOX, "docker.io/library/busybox:1")
    assert rec["repo_tags"] == [BUSYBOX, "docker.io/library/busybox:1"]
    assert len(store.images()) == 1


@pytest.fixture
def two(store):
    a = register(store, 1, BUSYBOX, "localhost:5000/a/b:tag")
    b = register(store, 2, "docker.io/user/app:1")
    return a, b


@pytest.mark.parametrize("name, which", [
    ("busybox", 0),
    ("busybox:latest", 0),
    (BUSYBOX, 0),
    ("localhost:5000/a/b:tag", 0),
    ("user/app:1", 1),
])
def test_resolve_by_tag(store, two, name, which):
    assert store.resolve(name) == two[which]


def test_resolve_by_id(store, two):
    for rec in two:
        hexid = rec["id"][7:]
        for name in (rec["id"], hexid, hexid[:12], "sha256:" + hexid[:12], "sha256:" + hexid[:3]):
            assert store.resolve(name)["id"] == rec["id"], name


def ids_sharing_a_first_digit() -> tuple[int, int]:
    seen: dict[str, int] = {}
    for n in range(100):
        first = sha(config_bytes(n))[7]
        if first in seen:
            return seen[first], n
        seen[first] = n
    raise AssertionError("unreachable: 17 ids always share a first hex digit")


def test_resolve_ambiguous_prefix(store):
    a, b = ids_sharing_a_first_digit()
    register(store, a)
    register(store, b)
    prefix = sha(config_bytes(a))[7]
    for name in (prefix, "sha256:" + prefix):
        with pytest.raises(RootlessError, match="ambiguous"):
            store.resolve(name)


def test_a_tag_wins_over_a_short_id_prefix(store):
    a = register(store, 1)
    prefix = a["id"][7:10]
    b = register(store, 2, f"docker.io/library/{prefix}:latest")
    assert store.resolve(prefix) == b
    assert store.resolve("sha256:" + prefix) == a


@pytest.mark.parametrize("name, shown", [
    ("nothere", "nothere:latest"), ("busybox:2", "busybox:2"), ("user/app", "user/app:latest"),
    ("localhost:5000/a/b", "localhost:5000/a/b:latest"), ("sha256:" + "f" * 64, "sha256:" + "f" * 64),
    ("f" * 64, "sha256:" + "f" * 64), ("busybox@sha256:" + "e" * 64, "busybox@sha256:" + "e" * 64)])
def test_resolve_unknown(store, two, name, shown):
    """Docker's words, which clients match on (docker-py's ImageNotFound): the name as Docker
    shows it, with its tag."""
    assert not any(r["id"].startswith("sha256:f") for r in two)  # the test ids are fixed
    with pytest.raises(ImageNotFound) as e:
        store.resolve(name)
    assert e.value.message == f"No such image: {shown}"


def test_resolve_in_an_empty_store(store):
    with pytest.raises(ImageNotFound):
        store.resolve("busybox")


def test_moving_a_tag_leaves_the_old_image_untagged(store):
    first = register(store, 1, BUSYBOX)
    second = register(store, 2, BUSYBOX)
    recs = {r["id"]: r for r in store.images()}
    assert recs[first["id"]]["repo_tags"] == []
    assert recs[second["id"]]["repo_tags"] == [BUSYBOX]
    assert store.resolve("busybox")["id"] == second["id"]
    assert store.resolve(first["id"])["id"] == first["id"]  # still there, by id


def test_images_newest_first(store):
    ids = [register(store, n)["id"] for n in range(3)]
    assert [r["id"] for r in store.images()] == ids[::-1]


# ---- corrupt index ------------------------------------------------------------------
@pytest.mark.parametrize("text", ["{not json", "", "[]", '{"images": []}', '"x"', '{"version": 1}'])
def test_corrupt_index(store, paths, text):
    Path(paths.images_file).write_text(text)
    for call in (store.images, lambda: store.resolve("busybox"), lambda: register(store, 1, BUSYBOX)):
        with pytest.raises(RootlessError) as e:
            call()
        assert paths.images_file in str(e.value)
        assert "system reset" in e.value.hint


# ---- id maps ----------------------------------------------------------------------------
def test_check_idmap(store, paths):
    store.check_idmap()  # records the key
    assert json.loads(Path(paths.idmap_file).read_text()) == {"key": "k"}
    store.check_idmap()  # the same key again: fine
    other = ImageStore(paths, userns_call=lambda fn, *a: fn(*a), idmap_key="single uid=0:1000:1 gid=0:1000:1")
    with pytest.raises(RootlessError, match="another id map") as e:
        other.check_idmap()
    assert "(k)" in str(e.value) and "system reset" in e.value.hint


@pytest.mark.parametrize("text", ["{broken", "[]", ""])
def test_check_idmap_rewrites_an_unreadable_record(store, paths, text):
    Path(paths.idmap_file).write_text(text)
    store.check_idmap()
    assert json.loads(Path(paths.idmap_file).read_text()) == {"key": "k"}


def test_unpack_layers_with_nothing_missing(store, paths):
    os.mkdir(paths.layer(layer(1).diff_id))
    assert store.unpack_layers([layer(1)]) == []
    assert not os.path.exists(paths.idmap_file)  # nothing unpacked, nothing recorded


# ---- remove (rmi) -------------------------------------------------------------------------
def test_remove_untags_then_deletes(store, paths):
    lr = layer(1)
    store.put_blob_bytes(config_bytes(1))
    os.mkdir(paths.layer(lr.diff_id))
    register(store, 1, BUSYBOX, "docker.io/library/busybox:1")
    no_users = lambda _id: []  # noqa: E731
    assert store.remove("busybox:1", False, no_users, set) == ["Untagged: busybox:1"]
    out = store.remove("busybox", False, no_users, set)
    assert out == ["Untagged: busybox:latest", f"Deleted: {sha(config_bytes(1))}"]
    assert store.images() == []
    assert not store.has_blob(sha(config_bytes(1)))
    assert not os.path.exists(paths.layer(lr.diff_id))
    assert os.listdir(paths.layers) == []


def test_remove_refuses_an_image_in_use(store):
    register(store, 1, BUSYBOX)
    with pytest.raises(Conflict, match="used by container 0123456789ab"):
        store.remove("busybox", False, lambda _id: ["0123456789ab" + "c" * 52], set)
    assert store.resolve("busybox")["repo_tags"] == [BUSYBOX]


# ---- streamed pulls: a blob read while it is written; what dead processes left -------------------
def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_a_growing_blob_is_read_as_it_is_written(store, tmp_path):
    import threading

    from layers.unpack import GrowingFile
    data = os.urandom(3 << 20)
    seen = []
    ready = threading.Event()

    class Slow(io.RawIOBase):  # hands out the data in pieces, pausing between them
        pos = 0

        def read(self, n=-1):
            if self.pos:
                ready.wait(5)
            piece = data[self.pos:self.pos + (1 << 20)]
            self.pos += len(piece)
            return piece

    def reader():
        g = GrowingFile(seen_path[0], len(data))
        with io.BufferedReader(g) as f:
            first = f.read(1000)
            ready.set()  # the writer goes on only once the reader has had the first part
            seen.append(first + f.read())

    seen_path = []
    t = None

    def on_open(path):
        nonlocal t
        seen_path.append(path)
        t = threading.Thread(target=reader)
        t.start()
    digest, size, _ = store.put_blob(Slow(), expected=sha(data), on_open=on_open)
    t.join(10)
    assert seen == [data] and size == len(data)
    assert os.path.exists(store.paths.blob(digest))


def test_a_failed_download_abandons_its_reader(store):
    import threading

    from layers.unpack import Abandoned, GrowingFile
    outcome = []
    started = threading.Event()

    def on_open(path):
        def reader():
            try:
                with io.BufferedReader(GrowingFile(path, 10 << 20)) as f:
                    started.set()
                    f.read()
            except Abandoned as e:
                outcome.append(e)
        threading.Thread(target=reader).start()
        started.wait(5)

    with pytest.raises(InvalidImage, match="does not match"):
        store.put_blob(io.BytesIO(b"x" * 1000), expected=sha(b"other"), on_open=on_open)
    for _ in range(500):
        if outcome:
            break
        import time
        time.sleep(0.01)
    assert len(outcome) == 1 and "abandoned" in str(outcome[0])
    assert os.listdir(store.paths.tmp) == []


def test_sweep_removes_what_dead_pulls_left(store, paths):
    dead, live = _dead_pid(), os.getpid()
    os.makedirs(paths.layers, exist_ok=True)
    left = [os.path.join(paths.layers, f".tmp-0123456789ab-{dead}-1"),
            os.path.join(paths.layers, f".del-0123456789ab-{dead}-2")]
    kept = [os.path.join(paths.layers, f".tmp-0123456789ab-{live}-3"), os.path.join(paths.layers, "a" * 64)]
    for d in left + kept:
        os.makedirs(os.path.join(d, "sub"))
    os.makedirs(paths.tmp, exist_ok=True)
    for pid in (dead, live):
        Path(paths.tmp, f"blob-{pid}-5").write_bytes(b"half")
    store.sweep_tmp()
    assert not any(os.path.exists(d) for d in left)
    assert all(os.path.isdir(d) for d in kept)
    assert os.listdir(paths.tmp) == [f"blob-{live}-5"]


# ---- partial downloads kept across pulls ----------------------------------------------------------
class _Breaking(io.RawIOBase):
    """``data``, then a connection error."""

    def __init__(self, data: bytes):
        self.data = io.BytesIO(data)

    def read(self, n=-1):
        chunk = self.data.read(n)
        if not chunk:
            raise ConnectionResetError("reset by peer")
        return chunk


def test_a_broken_download_is_kept_and_gone_on_with(store, paths):
    data = os.urandom(3_000_000)
    digest = sha(data)
    part = store.open_partial(digest, len(data))
    assert part.have == 0
    with pytest.raises(ConnectionResetError):
        store.put_blob(_Breaking(data[:1_200_000]), expected=digest, expected_size=len(data), partial=part)
    part.close()
    again = store.open_partial(digest, len(data))
    assert again.have == 1_200_000 and again.hasher.hexdigest() == hashlib.sha256(data[:1_200_000]).hexdigest()
    assert store.put_blob(io.BytesIO(data[1_200_000:]), expected=digest, expected_size=len(data),
                          partial=again) == (digest, len(data), True)
    again.close()
    assert store.read_blob(digest) == data and os.listdir(paths.tmp) == []


def test_a_partial_download_is_one_process_at_a_time(store, paths):
    data = b"y" * 1000
    part = store.open_partial(sha(data), len(data))
    assert store.open_partial(sha(data), len(data)) is None  # locked: another pull downloads alone
    part.close()
    assert store.open_partial(sha(data), len(data)) is not None


def test_a_wrong_partial_download_is_dropped(store, paths):
    data = os.urandom(100_000)
    part = store.open_partial(sha(data), len(data))
    os.write(part.fd, b"garbage" * 100)
    part.close()
    part = store.open_partial(sha(data), len(data))
    assert part.have == 700
    with pytest.raises(InvalidImage, match="does not match"):
        store.put_blob(io.BytesIO(data[700:]), expected=sha(data), expected_size=len(data), partial=part)
    part.close()
    assert os.listdir(paths.tmp) == []  # the next pull starts afresh
    part = store.open_partial(sha(data), 10)
    os.write(part.fd, data[:500])
    part.close()
    assert store.open_partial(sha(data), 10).have == 0  # longer than the blob: starts over


def test_old_or_pruned_partial_downloads_are_removed_unless_in_use(store, paths):
    old, fresh, busy = (store.open_partial(sha(b"%d" % i), 100) for i in range(3))
    for p in (old, fresh, busy):
        os.write(p.fd, b"z" * 10)
    old.close()
    fresh.close()
    os.utime(old.path, (0, 0))
    store.sweep_tmp()  # only what nobody went on with for days
    assert sorted(os.listdir(paths.tmp)) == sorted(os.path.basename(p.path) for p in (fresh, busy))
    assert store.drop_partials() == 10  # as image prune: every one not in use
    assert os.listdir(paths.tmp) == [os.path.basename(busy.path)]
    busy.close()


def test_a_reader_that_opened_a_newer_partial_file_finds_the_verified_blob(tmp_path):
    """Concurrent pulls share a partial file's name: one renames its finished download into the
    store, another makes a new empty file of the same name, and only then does the first pull's
    unpack helper open the name. It must not wait for that empty file to grow (it never would):
    it reads the verified blob instead."""
    import threading

    from layers.unpack import GrowingFile
    data = os.urandom(3 << 20)
    partial, final = tmp_path / "partial-x", tmp_path / "blob-x"
    final.write_bytes(data)  # the download finished and was renamed into the store ...
    partial.write_bytes(b"")  # ... and another pull made a new, empty partial file
    out = []

    def reader():
        with io.BufferedReader(GrowingFile(str(partial), len(data), str(final))) as f:
            out.append(f.read())
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(10)
    assert out == [data]
