"""``pull``: a manifest (or an index and the platform's manifest), its config and layers, into the store.

Every blob is verified (digest and size) before it is used; layers the store already has are
not downloaded again; the missing ones download concurrently and are unpacked while they arrive
by helpers in the user namespace. A download whose connection breaks off goes on from where it
stopped (a Range request). The image is registered last, so an interrupted pull leaves no image
(only verified blobs, which the next pull reuses).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import namedtuple

from layers import auth, manifest, reference
from layers.registry import Client, RegistryError
from layers.store import ImageStore, LayerRef
from rootless.base.errors import InvalidImage

TYPE_CHECKING = False  # annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Say = Callable[[str], object]  # a progress line to show
    Progress = Callable[[str, int, int], object]  # (digest, bytes so far, size)


PARALLEL = 4
Pulled = namedtuple("Pulled", "image digest reference")


def client_for(ref: reference.Reference, creds: tuple[str, str] | None = None, insecure: bool | None = None,
               push: bool = False, ca_dir: str | None = None, registry: str | None = None) -> Client:
    """A client for ``ref``'s repository at ``registry`` (default: the reference's own; a mirror's
    host otherwise), with the stored credentials of that host unless ``creds`` are given."""
    host = registry or ref.registry
    return Client(host, ref.path, creds or auth.lookup(host), insecure=insecure,
                  ca_dir=ca_dir, push=push, ref_text=str(ref))


def fetch_manifest(client: Client, ref: reference.Reference,
                   platform: manifest.Platform | None) -> tuple[str, dict, manifest.Platform | None]:
    """(top-level digest, image manifest document, the index entry's platform or None) for
    ``ref``, through an index if need be."""
    digest, _size, mt, doc = _top_manifest(client, ref)
    chosen = None
    if mt in manifest.INDEXES:
        entry = manifest.choose(manifest.index_entries(doc, f"{ref} index"),
                                platform or manifest.host_platform(), str(ref))
        sub = client.request("GET", f"/v2/{ref.path}/manifests/{entry.digest}", {"Accept": manifest.ACCEPT},
                             what="manifest")
        if "sha256:" + hashlib.sha256(sub.body).hexdigest() != entry.digest:
            raise InvalidImage(f"{ref}: the platform manifest does not match its digest {entry.digest}")
        mt, doc = manifest.parse(sub.body, sub.headers.get("Content-Type", ""), f"{ref} manifest")
        if mt not in manifest.MANIFESTS:
            raise InvalidImage(f"{ref}: an index inside an index is not supported")
        chosen = entry.platform
    return digest, doc, chosen


def fetch_blob(client: Client, store: ImageStore, desc: manifest.Descriptor, what: str,
               progress: Progress | None = None, on_open: Callable[[str], None] | None = None,
               say: Say | None = None, stop: threading.Event | None = None) -> None:
    """Download ``desc`` into the store, verified; nothing if the store has it. What an earlier,
    broken or killed, download of it left is gone on from (``say`` tells so). ``on_open(path)``:
    see :meth:`ImageStore.put_blob`; ``stop``: an event that makes the download give up."""
    if store.has_blob(desc.digest):
        return
    if manifest.is_foreign(desc) and desc.urls:
        _fetch_url(store, desc, what, on_open)
        return
    partial = store.open_partial(desc.digest, desc.size)  # None: another pull is downloading it
    try:
        if store.has_blob(desc.digest):  # that other pull has just finished it
            return
        start = partial.have if partial else 0
        if start and say:
            say(f"{desc.digest[7:19]}: Resuming download at {_mb(start)} of {_mb(desc.size)}")
        body = _Resuming(client, f"/v2/{client.repository}/blobs/{desc.digest}", desc.size, what, start, stop)
        try:
            store.put_blob(_Counting(body, desc, progress, start) if progress else body, expected=desc.digest,
                           expected_size=desc.size, what=f"{client.ref_text} {what}", on_open=on_open,
                           partial=partial)
        finally:
            body.close()
    finally:
        if partial:
            partial.close()


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}MB"


class _Resuming:
    """A blob's body from byte ``start`` on, that outlives a dropped connection: the rest is
    asked for again from where it broke off (``Range: bytes=N-``), at once and then with a
    growing backoff, up to ``RETRIES`` times. From a server that ignores ranges and sends the
    whole blob, the part already had is skipped."""

    RETRIES = 5

    def __init__(self, client: Client, path: str, size: int, what: str, start: int = 0,
                 stop: threading.Event | None = None):
        self.client, self.path, self.size, self.what, self.stop = client, path, size, what, stop
        self.done, self.skip, self.breaks = start, 0, 0
        self.body = None
        if start < size:
            self._open()

    def read(self, n: int = -1) -> bytes:
        import http.client
        while self.body is not None:
            if self.stop is not None and self.stop.is_set():
                raise RegistryError(f"{self.client.ref_text} ({self.what}): the pull stopped")
            try:
                data = self.body.read(n)
            except (OSError, http.client.HTTPException) as e:
                self._resume(e)
                continue
            if self.skip and data:
                cut = min(self.skip, len(data))
                self.skip -= cut
                data = data[cut:]
                if not data:
                    continue
            if not data and self.done < self.size:
                self._resume("the connection closed early")
                continue
            self.done += len(data)
            return data
        return b""  # all of it was there already

    def _resume(self, error: object) -> None:
        import time
        self.breaks += 1
        if self.breaks > self.RETRIES:
            raise RegistryError(f"{self.client.ref_text} ({self.what}): the download broke off {self.breaks} times, "
                                f"at {self.done} of {self.size} bytes; last: {error}",
                                "check the network and pull again (it goes on from there)")
        self.close()
        if self.breaks > 1:  # the first time at once: a dropped connection is usually just that
            time.sleep(min(0.25 * 2 ** (self.breaks - 2), 2.0))
        self._open()

    def _open(self) -> None:
        if not self.done:
            self.body = self.client.request("GET", self.path, ok=(200,), stream=True, what=self.what).body
            return
        resp = self.client.request("GET", self.path, {"Range": f"bytes={self.done}-"}, ok=(200, 206),
                                   stream=True, what=self.what)
        if resp.status == 206 and not str(resp.headers.get("Content-Range", "")).startswith(f"bytes {self.done}-"):
            resp.body.close()
            raise RegistryError(f"{self.client.ref_text} ({self.what}): the registry answered the range "
                                f"{self.done}- with {resp.headers.get('Content-Range')!r}")
        self.skip = self.done if resp.status == 200 else 0
        self.body = resp.body

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None


class _Counting:
    """A stream that reports how much of ``desc`` has been read."""

    def __init__(self, raw: _Resuming, desc: manifest.Descriptor, progress: Progress, start: int = 0):
        self.raw, self.desc, self.progress, self.done = raw, desc, progress, start

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.done += len(data)
        self.progress(self.desc.digest, self.done, self.desc.size)
        return data


def _fetch_url(store: ImageStore, desc: manifest.Descriptor, what: str,
               on_open: Callable[[str], None] | None = None) -> None:
    """A foreign (non-distributable) layer: from the URLs its descriptor names."""
    import urllib.request
    last = None
    for url in desc.urls:
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                store.put_blob(r, expected=desc.digest, expected_size=desc.size, what=what, on_open=on_open)
                return
        except OSError as e:
            last = e
    raise RegistryError(f"{what}: cannot download the foreign layer {desc.digest[:19]} from {desc.urls[0]}: {last}")


def _first_answering(ref: reference.Reference, endpoints: list[dict], platform: manifest.Platform | None
                     ) -> tuple[Client, str, dict, manifest.Platform | None]:
    """(client, digest, manifest, platform) from the first endpoint (mirrors first) that has the image."""
    last: RegistryError | None = None
    for ep in endpoints:
        client = client_for(ref, ep.get("creds"), ep.get("insecure"), ca_dir=ep.get("ca_dir"),
                            registry=ep.get("registry"))
        try:
            return (client, *fetch_manifest(client, ref, platform))
        except RegistryError as e:
            client.close()
            last = e
    assert last is not None  # at least one endpoint: the callers give `endpoints or [{}]`
    raise last


def pull(store: ImageStore, ref_text: str, endpoints: list[dict] | None = None,
         platform: manifest.Platform | None = None, say: Say | None = None) -> Pulled:
    """Pull ``ref_text`` into ``store`` from the first of ``endpoints`` (``registry``, ``creds``,
    ``insecure``, ``ca_dir``; default: the reference's registry) that has it; ``say(line)``
    reports progress (None: quiet)."""
    say = say or (lambda _line: None)
    ref = reference.parse(ref_text)
    store.sweep_tmp()  # what a killed pull left half-written
    store.staging()  # here, before the download threads: what they store is this pull's until registered
    client, digest, doc, chosen = _first_answering(ref, endpoints or [{}], platform)
    # once the manifest is here, as Docker: the API's answer to a missing one is a 404, not a stream
    say(f"{ref.tag or ref.digest}: Pulling from {ref.familiar_repository}")
    try:
        config_desc, layer_descs = manifest.image_parts(doc, str(ref))
        fetch_blob(client, store, config_desc, "config")
        config_bytes = store.read_blob(config_desc.digest)
        diff_ids = _diff_ids(config_bytes, len(layer_descs), str(ref))
        refs = [LayerRef(d, desc.digest, desc.media_type or manifest.OCI_LAYER_GZIP)
                for d, desc in zip(diff_ids, layer_descs, strict=True)]
        _fetch_and_unpack(client, store, refs, {d.digest: d for d in layer_descs}, say)
    finally:
        client.close()
    for r in refs:
        if not r.size:
            r.size = store.known_layer_size(r.diff_id)
    tags = [str(ref)] if ref.tag else []
    image, _ = store.register(config_bytes, refs, tags, manifest_digest=digest,
                              repo_digests=[f"{ref.repository}@{digest}"],
                              platform=manifest.platform_text(chosen) if chosen else None)
    say(f"Digest: {digest}")
    say(f"Status: Downloaded newer image for {ref.familiar_repository}:{ref.tag}" if ref.tag
        else f"Status: Downloaded image for {ref.familiar_repository}@{digest}")
    return Pulled(image, digest, ref)


def distribution(ref: reference.Reference, endpoints: list[dict]) -> dict:
    """What the registry says of ``ref`` without pulling it (the Engine API's ``GET
    /distribution/NAME/json``): the descriptor of its manifest or index, and the platforms it
    has (an index's entries', or a single manifest's config's), from the first endpoint that has it."""
    return _from_first_endpoint(ref, endpoints, lambda client: _distribution(client, ref))


def _from_first_endpoint(ref: reference.Reference, endpoints: list[dict], ask: Callable[[Client], Any]) -> Any:
    """``ask(client)`` of the first endpoint (the mirrors, then the registry) that answers it; else
    the last endpoint's error."""
    last: RegistryError | None = None
    for ep in endpoints or [{}]:
        client = client_for(ref, ep.get("creds"), ep.get("insecure"), ca_dir=ep.get("ca_dir"),
                            registry=ep.get("registry"))
        try:
            return ask(client)
        except RegistryError as e:
            last = e
        finally:
            client.close()
    assert last is not None  # at least one endpoint: the callers give `endpoints or [{}]`
    raise last


def _top_manifest(client: Client, ref: reference.Reference) -> tuple[str, int, str, dict]:
    """(digest, size, media type, document) of the manifest or index ``ref`` names, its digest checked."""
    resp = client.request("GET", f"/v2/{ref.path}/manifests/{ref.digest or ref.tag}", {"Accept": manifest.ACCEPT},
                          what="manifest")
    digest = "sha256:" + hashlib.sha256(resp.body).hexdigest()
    if ref.digest and digest != ref.digest:
        raise InvalidImage(f"{ref}: the registry sent a manifest with digest {digest}")
    mt, doc = manifest.parse(resp.body, resp.headers.get("Content-Type", ""), f"{ref} manifest")
    return digest, len(resp.body), mt, doc


def _distribution(client: Client, ref: reference.Reference) -> dict:
    digest, size, mt, doc = _top_manifest(client, ref)
    if mt in manifest.INDEXES:
        platforms = [_platform_json(e.platform) for e in manifest.index_entries(doc, f"{ref} index") if e.platform]
    else:
        config_desc, _ = manifest.image_parts(doc, str(ref))
        blob = client.request("GET", f"/v2/{ref.path}/blobs/{config_desc.digest}", what="config").body
        if "sha256:" + hashlib.sha256(blob).hexdigest() != config_desc.digest:
            raise InvalidImage(f"{ref}: the config does not match its digest {config_desc.digest}")
        try:
            config = json.loads(blob)
        except ValueError:
            raise InvalidImage(f"{ref}: an unreadable image config") from None
        platforms = [_platform_json(manifest.Platform(os=str(config.get("os") or ""),
                                                      architecture=str(config.get("architecture") or ""),
                                                      variant=str(config.get("variant") or "")))]
    return {"Descriptor": {"mediaType": mt, "digest": digest, "size": size},
            "Platforms": [p for p in platforms if p.get("os")]}


def _platform_json(p: manifest.Platform) -> dict:
    """An OCI platform as Docker's JSON writes it (no empty fields)."""
    out = {"architecture": p.architecture, "os": p.os}
    if p.variant:
        out["variant"] = p.variant
    return out


def list_tags(ref: reference.Reference, endpoints: list[dict]) -> list[str]:
    """The repository's tags (``/tags/list``, following ``Link`` pages), from the first endpoint."""
    return _from_first_endpoint(ref, endpoints, lambda client: _tags(client, ref))


def _tags(client: Client, ref: reference.Reference) -> list[str]:
    tags: list[str] = []
    path = f"/v2/{ref.path}/tags/list?n=1000"
    while path:
        resp = client.request("GET", path, what="tag list")
        try:
            tags += json.loads(resp.body).get("tags") or []
        except (ValueError, AttributeError):
            raise InvalidImage(f"{ref.repository}: an unreadable tag list") from None
        link = resp.headers.get("Link", "")
        path = link[link.find("<") + 1:link.find(">")] if link.startswith("<") else ""
    return tags


def _diff_ids(config_bytes: bytes, count: int, what: str) -> list[str]:
    try:
        config = json.loads(config_bytes)
        diff_ids = config["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise InvalidImage(f"{what}: the image config has no rootfs.diff_ids") from None
    if not isinstance(diff_ids, list) or len(diff_ids) != count:
        raise InvalidImage(f"{what}: {len(diff_ids) if isinstance(diff_ids, list) else 0} diff ids for {count} layers")
    return diff_ids


def _fetch_and_unpack(client: Client, store: ImageStore, refs: list[LayerRef], descs: dict, say: Say) -> None:
    """Download the missing blobs (concurrently) and unpack the missing layers by up to two
    helpers in the user namespace, each layer while its blob is still arriving (streamed: the
    helper follows the download's file). A layer is moved into place only once its blob is
    verified too; what a failed pull unpacked is removed."""
    todo, seen = [], set()
    for r in refs:
        if store.layer_present(r.diff_id):
            say(f"{r.blob[7:19]}: Already exists")
        elif r.diff_id not in seen:
            seen.add(r.diff_id)
            todo.append(r)
    if not todo:
        return
    store.check_idmap()
    from layers.heap import keep_freed_memory
    keep_freed_memory()  # before the helpers fork: they inherit it
    if store.userns_worker is None:  # no helpers to keep (a bare store): one pass after the other
        _download(client, store, [descs[r.blob] for r in todo], say)
        store.unpack_layers(todo)
        return
    from layers.store import unpack_one
    workers = [store.userns_worker(unpack_one, "unpack") for _ in range(min(2, os.cpu_count() or 1, len(todo)))]
    _Streamer(client, store, todo, descs, say, workers).run()


class _Streamer:
    """The event loop of a streamed pull: download threads report their files' paths and their
    outcomes through a queue (and a wake-up pipe); helpers answer on their channels."""

    def __init__(self, client: Client, store: ImageStore, todo: list[LayerRef], descs: dict, say, workers):
        self.client, self.store, self.descs, self.say = client, store, descs, say
        self.workers, self.free = workers, list(workers)
        self.busy: dict = {}  # worker -> (LayerRef, job) it is on
        self.by_blob: dict[str, list[LayerRef]] = {}
        for r in todo:
            self.by_blob.setdefault(r.blob, []).append(r)
        self.remaining = len(todo)
        self.waiting: list[tuple[LayerRef, str | None]] = []  # (layer, growing file or None: stored)
        self.verified: set[str] = set()
        self.failed: dict[str, BaseException] = {}
        self.unpacked: dict[str, list[tuple[LayerRef, dict]]] = {}  # blob -> unpacked layers waiting for it
        self.jobs: list[dict] = []
        self.stop = threading.Event()  # the pull failed or was interrupted: downloads give up
        self.lock = threading.Lock()  # download threads' events against closing the wake-up pipe
        self.closed = False

    def run(self) -> None:
        import queue
        import selectors
        from concurrent.futures import ThreadPoolExecutor

        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)
        # The kernel may hand ctrl-C to a download thread: its handler then only flags it, and
        # the main thread would sleep on in select() until some event came. The wake-up pipe
        # is told of every signal, so the main thread wakes and raises KeyboardInterrupt.
        old_wakeup = _set_wakeup_fd(self.wake_w)
        pool = ThreadPoolExecutor(max_workers=min(PARALLEL, len(self.by_blob)))
        ok = False
        try:
            for blob in self.by_blob:
                if self.store.has_blob(blob):  # left by an interrupted pull, verified: not downloaded again
                    self.say(f"{blob[7:19]}: Already downloaded")
                    self._event(("verified", blob, "stored"))
                else:
                    pool.submit(self._fetch, blob)
            while self.remaining:
                for key, _ in self.sel.select():
                    if key.data is None:
                        self._drain()
                    else:
                        self._answered(key.data)
                self._assign()
            ok = True
        finally:
            if not ok:
                # A helper in the middle of a job does not read its stop message, and ctrl-C can
                # land between handing a helper its job and recording that: stop them all.
                for w in self.workers:
                    os.kill(w.pid, 9)
            # After a failure (or ctrl-C) downloads stop at their next read, and are not waited
            # for: one stalled on a slow network must not hold the command. What they wrote
            # stays for the next pull to go on from.
            self.stop.set()
            pool.shutdown(wait=ok, cancel_futures=True)
            for w in self.workers:
                w.close()
            self.sel.close()
            _set_wakeup_fd(old_wakeup)
            with self.lock:
                self.closed = True
                os.close(self.wake_r)
                os.close(self.wake_w)
            if not ok:
                self.store.discard_unpacked(self.jobs)

    # ---- download threads ----
    def _event(self, item) -> None:
        with self.lock:
            if not self.closed:
                self.events.put(item)
                try:
                    os.write(self.wake_w, b"x")
                except BlockingIOError:  # the pipe is full of wake-ups already
                    pass

    def _fetch(self, blob: str) -> None:
        try:
            fetch_blob(self.client, self.store, self.descs[blob], f"layer {blob[7:19]}",
                       getattr(self.say, "progress", None), on_open=lambda path: self._event(("growing", blob, path)),
                       say=self.say, stop=self.stop)
            self._event(("verified", blob, None))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self._event(("failed", blob, e))

    # ---- main thread ----
    def _drain(self) -> None:
        import queue
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass
        failure = None
        while True:
            try:
                kind, blob, value = self.events.get_nowait()
            except queue.Empty:
                break
            if kind == "growing":
                self.waiting += [(r, value) for r in self.by_blob[blob]]
            elif kind == "failed":
                self.failed[blob] = value
                failure = failure or value
            else:
                self.verified.add(blob)
                if value != "stored":
                    self.say(f"{blob[7:19]}: Download complete")
                streamed = self.unpacked.pop(blob, [])
                for lr, job in streamed:
                    self._commit(lr, job)
                if not streamed and not any(lr.blob == blob for lr, _ in self.waiting) and \
                        not any(lr.blob == blob for lr, _job in self.busy.values()):
                    self.waiting += [(r, None) for r in self.by_blob[blob]]  # not streamed: from the store
        if failure is not None:
            raise failure  # helpers following a download's file are stopped on the way out

    def _assign(self) -> None:
        import selectors
        while self.free and self.waiting:
            lr, growing = self.waiting.pop(0)
            w = self.free.pop()
            job = self.store.unpack_job(lr, growing=growing, size=self.descs[lr.blob].size, commit=False)
            self.jobs.append(job)
            self.busy[w] = (lr, job)
            self.sel.register(w, selectors.EVENT_READ, w)
            w.submit(job)

    def _answered(self, w) -> None:
        self.sel.unregister(w)
        lr, job = self.busy.pop(w)
        self.free.append(w)
        try:
            lr.size = w.result()["size"]
        except BaseException:
            # A corrupt or abandoned download makes the helper fail too: the download's own
            # error (a digest mismatch, a connection reset) is the one to report.
            err = self._outcome(lr.blob)
            if err is not None:
                raise err from None
            raise
        if lr.blob in self.verified:
            self._commit(lr, job)
        else:
            self.unpacked.setdefault(lr.blob, []).append((lr, job))

    def _outcome(self, blob: str) -> BaseException | None:
        """Wait for ``blob``'s download to end; its error, if it failed."""
        import select
        while blob not in self.verified and blob not in self.failed:
            select.select([self.wake_r], [], [])
            try:
                self._drain()
            except BaseException:  # noqa: BLE001 - recorded in self.failed, reported by the caller
                pass
        return self.failed.get(blob)

    def _commit(self, lr: LayerRef, job: dict) -> None:
        self.store.commit_layer(job)
        self.remaining -= 1
        self.say(f"{lr.blob[7:19]}: Pull complete")


def _set_wakeup_fd(fd: int) -> int:
    """``signal.set_wakeup_fd``, which only the main thread may call (a pull run from another
    thread goes without); the previous descriptor."""
    import signal
    if threading.current_thread() is not threading.main_thread():
        return -1
    return signal.set_wakeup_fd(fd, warn_on_full_buffer=False)


def _download(client: Client, store: ImageStore, descs: list[manifest.Descriptor], say: Say) -> None:
    missing = [d for d in dict.fromkeys(descs) if not store.has_blob(d.digest)]
    for d in descs:
        if d not in missing:
            say(f"{d.digest[7:19]}: Already exists")
    if not missing:
        return
    from concurrent.futures import ThreadPoolExecutor

    def one(desc: manifest.Descriptor) -> None:
        fetch_blob(client, store, desc, f"layer {desc.digest[7:19]}", say=say)
        say(f"{desc.digest[7:19]}: Pull complete")

    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(missing))) as pool:
        futures = [pool.submit(one, d) for d in missing]
        errors = [f.exception() for f in futures]
    for e in errors:
        if e is not None:
            raise e
