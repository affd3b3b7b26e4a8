"""``/images/...`` and ``/build``: Docker's image endpoints over the CLI's use cases.

Pulls, pushes, loads and builds answer Docker's stream of JSON messages. The engine reports a
pull's or push's progress through ``ctx.progress`` (``say(line)`` and ``say.progress(digest,
done, total)``, from several download threads): :class:`_Progress` turns it into Docker's
``{"status", "id", "progressDetail"}`` lines. A build's steps, and what its ``RUN`` steps write
(the engine sends that to fds 1 and 2), become ``{"stream": ...}`` lines in the order they came.
Once a stream has begun, a failure is its last line (``{"errorDetail": ..., "error": ...}``), as
Docker's; before that it is an ordinary JSON error.
"""

from __future__ import annotations

import base64
import contextlib
import json
import lzma
import os
import re
import select
import shutil
import sys
import tempfile
import threading
import time
import traceback
import zlib

from rootless.api import http
from rootless.base.errors import ImageNotFound, RootlessError, UsageError
from rootless.engine import dockerview
from rootless.engine import images as uc

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from collections.abc import Sequence

    from rootless.api.http import Request
    from rootless.engine.context import Context

_SHORT_ID = re.compile(r"^[0-9a-f]{12}$")
_PUSHED = re.compile(r"^(?P<tag>\S+): digest: (?P<digest>sha256:[0-9a-f]{64}) size: (?P<size>\d+)$")


# ---- a stream of JSON messages --------------------------------------------------------------
class _Out:
    """Docker's JSON message stream, begun at the first message; writes from several threads
    (a pull's downloads) do not interleave."""

    def __init__(self, conn: http.Connection):
        self.conn = conn
        self.lock = threading.RLock()
        self.stream: http.Stream | None = None

    @property
    def started(self) -> bool:
        return self.stream is not None

    def start(self) -> http.Stream:
        """The stream, begun now if it was not."""
        with self.lock:
            if self.stream is None:
                self.stream = self.conn.start_stream(200, "application/json")
            return self.stream

    def emit(self, obj: dict) -> None:
        with self.lock:
            self.start().write_json(obj)

    def end(self) -> None:
        with self.lock:
            self.start().end()


def _streamed(out: _Out, work, code_of=None) -> None:
    """Run ``work()``; a failure after the stream began is its last message (before, it is the
    ordinary JSON error routes.py makes of it), with ``code_of(error)`` as its ``code`` when that
    gives one."""
    try:
        work()
    except (BrokenPipeError, ConnectionResetError):
        raise
    except Exception as e:
        if not out.started:
            raise
        if isinstance(e, RootlessError):
            message = e.message
        else:
            traceback.print_exc(file=sys.stderr)
            message = f"internal error: {type(e).__name__}: {e}"
        code = code_of(e) if code_of else None
        detail = {"code": code, "message": message} if code else {"message": message}
        out.emit({"errorDetail": detail, "error": message})
    out.end()


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{int(n)}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000.0
    return str(n)


def _bar(done: int, total: int) -> str:
    width = 50
    filled = int(width * done / total) if total else width
    arrow = "=" * max(filled - 1, 0) + (">" if filled < width else "=")
    return f"[{arrow}{' ' * (width - len(arrow))}] {_size(done):>8}/{_size(total)}"


class _Progress:
    """The engine's progress reports (see rootless.cli.progress) as Docker's JSON messages:
    ``"<12 hex>: STATUS"`` -> ``{"status", "id"}`` (a pull's layer first says ``Pulling fs
    layer``), ``"TAG: Pulling from REPO"`` -> ``{"status": "Pulling from REPO", "id": TAG}``,
    bytes -> ``Downloading`` with ``progressDetail``, anything else -> ``{"status": line}``."""

    def __init__(self, out: _Out, pulling: bool, preparing: Sequence[str] = ()):
        self.out, self.pulling = out, pulling
        self.preparing = list(preparing)  # a push's layers, said after its first line as Docker's
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.last: dict[str, float] = {}

    def _layer(self, ident: str) -> None:
        if self.pulling and ident not in self.seen:
            self.out.emit({"status": "Pulling fs layer", "progressDetail": {}, "id": ident})
        self.seen.add(ident)

    def __call__(self, line: str) -> None:
        ident, sep, status = line.partition(": ")
        with self.lock:
            if sep and _SHORT_ID.match(ident):
                if status not in ("Already exists", "Layer already exists"):
                    self._layer(ident)
                self.seen.add(ident)
                self.out.emit({"status": status, "progressDetail": {}, "id": ident})
            elif sep and status.startswith("Pulling from "):
                self.out.emit({"status": f"Pulling from {_path(status[len('Pulling from '):])}", "id": ident})
            else:
                self.out.emit({"status": line})
                m = _PUSHED.match(line)
                if m:  # a tag pushed: Docker's aux message follows its line
                    self.out.emit({"progressDetail": {}, "aux": {"Tag": m["tag"], "Digest": m["digest"],
                                                                 "Size": int(m["size"])}})
                if line.startswith("The push refers to repository"):
                    for ident in dict.fromkeys(self.preparing):
                        self.out.emit({"status": "Preparing", "progressDetail": {}, "id": ident})
                    self.preparing = []

    def progress(self, digest: str, done: int, total: int) -> None:
        ident = digest[7:19]
        with self.lock:
            now = time.monotonic()
            if done < total and now - self.last.get(ident, 0.0) < 0.1:
                return
            self.last[ident] = now
            self._layer(ident)
            self.out.emit({"status": "Downloading", "progressDetail": {"current": done, "total": total},
                           "progress": _bar(done, total), "id": ident})


def _path(repository: str) -> str:
    """A repository as Docker's pull names it: its path at the registry (``library/busybox``)."""
    from layers import reference
    try:
        return reference.parse(repository).path
    except RootlessError:
        return repository


def _reporting(ctx: Context, out: _Out, pulling: bool, preparing: Sequence[str] = ()) -> _Progress:
    """Make the engine's pulls and pushes report to ``out`` (this connection's process is its own:
    the Context may be changed)."""
    say = _Progress(out, pulling, preparing)
    ctx.progress = lambda quiet: None if quiet else say
    return say


def _registry_options(req: http.Request, platform: str | None = None) -> uc.RegistryOptions:
    """``X-Registry-Auth`` (base64url JSON: username, password, serveraddress) as the engine's
    one-off credentials; without it the stored ones (``rootless login``) are used."""
    creds = None
    header = req.headers.get("x-registry-auth", "").strip()
    if header:
        try:
            data = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        except ValueError:
            data = None  # as Docker: an unreadable header is no credentials
        if isinstance(data, dict) and data.get("username") and data.get("password"):
            creds = f"{data['username']}:{data['password']}"
    return uc.RegistryOptions(creds=creds, platform=platform or None)


# ---- Docker's JSON of an image --------------------------------------------------------------
def _unix(iso: str) -> int:
    t = dockerview.parse_time(iso)
    return int(t) if t is not None else 0


def _familiar_digests(rec: dict) -> list[str]:
    from layers import reference
    out = []
    for rd in rec.get("repo_digests") or []:
        try:
            ref = reference.parse(rd)
            out.append(f"{ref.familiar_repository}@{ref.digest}")
        except RootlessError:
            out.append(rd)
    return out


def summary(ctx: Context, rec: dict, tags: list[str] | None = None) -> dict:
    """One entry of ``GET /images/json`` (Docker's ImageSummary); ``tags``: the familiar
    ``NAME:TAG`` names to show (default: all of the image's)."""
    if tags is None:
        from layers import reference
        tags = []
        for t in rec.get("repo_tags") or []:
            ref = reference.parse(t)
            tags.append(f"{ref.familiar_repository}:{ref.tag}")
    try:
        labels = (ctx.store.config(rec).get("config") or {}).get("Labels") or {}
    except (RootlessError, OSError):
        labels = {}
    size = rec.get("size", 0)
    return {"Id": rec["id"], "ParentId": rec.get("parent") or "", "RepoTags": tags or ["<none>:<none>"],
            "RepoDigests": _familiar_digests(rec) or (["<none>@<none>"] if not tags else []),
            "Created": _unix(rec.get("created", "")), "Size": size, "VirtualSize": size, "SharedSize": -1,
            "Labels": labels, "Containers": -1}


def summaries(ctx: Context, filters: Sequence[str] = ()) -> list[dict]:
    """``GET /images/json``'s list: an entry per image, newest first, showing the tags that
    passed the filters (Docker's ``reference`` filter narrows RepoTags too)."""
    rows = uc.images(ctx, list(filters))
    tags: dict[str, list[str]] = {}
    for row in rows:
        shown = tags.setdefault(row.id, [])
        if row.repository != "<none>":
            shown.append(f"{row.repository}:{row.tag}")
    by_id = {rec["id"]: rec for rec in ctx.store.images(with_shared=True)}
    return [summary(ctx, by_id[i], t) for i, t in tags.items() if i in by_id]


# ---- endpoints --------------------------------------------------------------------------------
def list_(ctx: Context, req: Request):
    """``filters``, and the older API's ``filter`` (a reference pattern)."""
    name = req.arg("filter")
    return 200, summaries(ctx, req.filters() + ([f"reference={name}"] if name else []))


def inspect(ctx: Context, req: Request, name):
    out = uc.image_inspect(ctx, name)
    out["RepoDigests"] = _familiar_digests(ctx.store.resolve(name))
    for key, value in (("Parent", ""), ("Comment", ""), ("Container", ""), ("ContainerConfig", {}),
                       ("DockerVersion", ""), ("VirtualSize", out.get("Size", 0)),
                       ("GraphDriver", {"Name": ctx.overlay_method(), "Data": None}),
                       ("Metadata", {"LastTagTime": "0001-01-01T00:00:00Z"})):
        out.setdefault(key, value)
    out.pop("History", None)  # not part of Docker's image inspect (GET /images/{name}/history has it)
    out["Config"] = {**IMAGE_CONFIG_DEFAULTS, **(out.get("Config") or {})}
    return 200, out


# Docker's image Config carries every field of a container config: those an image's own config
# leaves out, with the values Docker shows for them
IMAGE_CONFIG_DEFAULTS = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
    "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}


def history(ctx: Context, req: Request, name):
    rec = ctx.store.resolve(name)
    tags = summary(ctx, rec)["RepoTags"]
    tags = [] if tags == ["<none>:<none>"] else tags
    return 200, [{"Id": row.id, "Created": _unix(row.created), "CreatedBy": row.created_by,
                  "Tags": tags if i == 0 and tags else None, "Size": row.size, "Comment": row.comment}
                 for i, row in enumerate(uc.history(ctx, name))]


def delete(ctx: Context, req: Request, name):
    out = []
    for line in uc.rmi(ctx, [name], req.flag("force")):
        kind, _, what = line.partition(": ")
        out.append({kind: what})
    return 200, out


def tag(ctx: Context, req: Request, name):
    repo = req.arg("repo") or ""
    if not repo:
        raise UsageError("the new name is missing (?repo=)")
    target = f"{repo}:{req.arg('tag')}" if req.arg("tag") else repo
    uc.tag(ctx, name, target)
    return 201, None


def prune(ctx: Context, req: Request):
    all_ = False
    for f in req.filters():
        key, _, value = f.partition("=")
        if key == "dangling":
            all_ = value.lower() in ("false", "0")
        else:
            raise UsageError(f"the {key} filter of image prune is not supported", "use dangling=true or dangling=false")
    from rootless.engine import system
    lines, reclaimed = uc.image_prune(ctx, all_)
    reclaimed += system.sweep(ctx, build_steps=False)[1]  # what killed commands left, as the CLI's
    deleted = []
    for line in lines:
        kind, _, what = line.partition(": ")
        deleted.append({kind: what})
    return 200, {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}


def create(ctx: Context, req: Request):
    """Pull (``fromImage``), or import a root filesystem tarball (``fromSrc=-``: the body)."""
    if req.arg("fromSrc") is not None:
        return _import(ctx, req)
    image = req.arg("fromImage") or ""
    if not image:
        raise UsageError("nothing to pull: give fromImage (or fromSrc to import)")
    tag_ = req.arg("tag") or ""
    opts = _registry_options(req, req.arg("platform"))
    req.drain()
    out = _Out(req.conn)
    _reporting(ctx, out, pulling=True)
    last = image.rsplit("/", 1)[-1]
    if tag_:
        ref = f"{image}@{tag_}" if tag_.startswith("sha256:") else f"{image}:{tag_}"
    else:
        ref = image

    def work():
        if not tag_ and "@" not in last and ":" not in last:
            uc.pull_all_tags(ctx, ref, opts)  # Docker: no tag means every tag
        else:
            uc.pull(ctx, ref, opts)
    _streamed(out, work)


def _import(ctx: Context, req: Request):
    src = req.arg("fromSrc")
    if src != "-":
        req.drain()
        req.conn.send(501, http.error_body("importing from a URL is not supported by rootless: "
                                           "download the tarball and send it as the body (fromSrc=-)"))
        return None
    changes = [c for c in (req.query.get("changes") or []) if c]
    if changes:  # a bad change is a 400 before the body is read
        from layers import imageconfig
        imageconfig.apply_changes({}, changes)
    repo, tag_ = req.arg("repo") or "", req.arg("tag") or ""
    name = (f"{repo}:{tag_}" if tag_ else repo) or None
    with _spooled(ctx, req, "api-import-") as path:
        image_id = uc.import_rootfs(ctx, path, name, changes)
    return 200, {"status": image_id}


@contextlib.contextmanager
def _spooled(ctx: Context, req: Request, prefix: str):
    """The request body in a temporary file of the store's tmp directory (removed after)."""
    os.makedirs(ctx.paths.tmp, exist_ok=True)
    # pid: see layers.leftovers
    fd, path = tempfile.mkstemp(dir=ctx.paths.tmp, prefix=f"{prefix}{os.getpid()}-", suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in req.body_chunks():
                f.write(chunk)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def distribution(ctx: Context, req: Request, name):
    """``GET /distribution/NAME/json``: what the registry has under NAME (its descriptor and
    platforms), asked with the client's credentials. The registry's 401, 403 and 404 are the answer's."""
    from layers.registry import RegistryError
    try:
        return 200, uc.distribution(ctx, name, _registry_options(req))
    except RegistryError as e:
        status = getattr(e, "status", 0)
        if status in (401, 403, 404):
            e.http_status = status
        raise


def push(ctx: Context, req: Request, name):
    tag_ = req.arg("tag") or ""
    image = f"{name}:{tag_}" if tag_ else name
    opts = _registry_options(req)
    req.drain()
    if tag_:
        recs = [ctx.store.resolve(image)]  # a missing image is a 404 before any stream
    else:
        from layers import reference
        repo = reference.parse(name).repository
        recs = [r for r in ctx.store.images() if any(reference.parse(t).repository == repo
                                                      for t in r.get("repo_tags") or [])]
        if not recs:
            raise ImageNotFound(f"An image does not exist locally with the tag: {name}")
    out = _Out(req.conn)
    _reporting(ctx, out, pulling=False, preparing=[lr["blob"][7:19] for rec in recs for lr in rec["layers"]])

    def work():
        if tag_:
            uc.push(ctx, image, None, opts)
        else:
            uc.push_all_tags(ctx, name, opts)
    _streamed(out, work)


def load(ctx: Context, req: Request):
    """Docker answers 200 and says a failed load inside the stream (docker-py's ImageLoadError
    comes from there), once the body is read."""
    with _spooled(ctx, req, "api-load-") as path:
        out = _Out(req.conn)
        out.start()

        def work():
            try:
                lines = uc.load(ctx, path)
            except RootlessError as e:  # the spooled file is no name the client knows
                e.message = e.message.replace(f"archive {path}", "the uploaded archive").replace(path, "the upload")
                raise
            finally:  # gone before the answer ends: a client that saw the end finds no upload left
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            for line in lines:
                out.emit({"stream": line + "\n"})
        _streamed(out, work)


def get_many(ctx: Context, req: Request):
    return _save(ctx, req, [n for n in req.query.get("names", []) if n])


def get_one(ctx: Context, req: Request, name):
    return _save(ctx, req, [name])


def _save(ctx: Context, req: Request, names: list[str]):
    """A docker-archive of ``names``, written straight to the connection (the body ends when the
    connection closes)."""
    from layers import save as savemod
    if not names:
        raise UsageError("no image to save: give names=IMAGE")
    for n in names:
        ctx.store.resolve(n)  # a missing image is a 404, before the archive begins
    req.drain()
    sock = req.conn.hijack(req, content_type="application/x-tar")
    try:
        savemod.save(ctx.store, names, None, "docker-archive", out_fd=os.dup(sock.fileno()))
    except RootlessError as e:  # too late for an error response: the archive stops short
        print(f"rootless: api: saving {' '.join(names)}: {e.message}", file=sys.stderr, flush=True)


# ---- build --------------------------------------------------------------------------------------
def build_prune(ctx: Context, req: Request):
    from rootless.engine import build as build_uc
    from rootless.engine import system
    _entries, freed = build_uc.builder_prune(ctx)
    freed += system.sweep(ctx, builds_only=True)[1]  # what killed builds left, as the CLI's
    return 200, {"CachesDeleted": [], "SpaceReclaimed": freed}


def build(ctx: Context, req: Request):
    """``POST /build``: the body is the context (a tar, maybe compressed, or a Dockerfile alone)."""
    from layers import reference
    from rootless.engine import build as build_uc
    if req.arg("remote"):
        raise UsageError("building from a remote context is not supported by rootless",
                         "send the context as the request body")
    shown = []
    for t in req.query.get("t", []):
        if t:
            ref = reference.parse(t)
            shown.append(f"{ref.familiar_repository}:{ref.tag or 'latest'}")
    network = _first(req, "networkmode") or "default"
    build_uc.build_network(ctx, network)  # a mode or network it cannot use: refused before the stream
    extra_hosts = tuple(h for h in req.query.get("extrahosts", []) if h)
    for h in extra_hosts:
        build_uc.parse_add_host(h)
    cache_from = _cache_from(req)
    build_args = {k: str(v) for k, v in req.json_arg("buildargs").items() if v is not None}
    labels = {k: str(v) for k, v in req.json_arg("labels").items()}
    quiet = req.flag("q")
    os.makedirs(ctx.paths.tmp, exist_ok=True)
    workdir = tempfile.mkdtemp(dir=ctx.paths.tmp, prefix=f"api-build-{os.getpid()}-")
    try:
        context = os.path.join(workdir, "context")
        os.mkdir(context, 0o700)
        body = os.path.join(workdir, "body")
        with open(body, "wb") as f:
            for chunk in req.body_chunks():
                f.write(chunk)
        # the first value: docker-py sends the name of a Dockerfile from outside the context (added to
        # the tar under that name), then its text (Docker's Go server reads the first)
        dockerfile, text = _unpack_context(ctx, body, context, _first(req, "dockerfile") or "Dockerfile")
        os.unlink(body)
        breq = build_uc.BuildRequest(
            context=context, dockerfile=dockerfile, dockerfile_text=text, tags=tuple(shown),
            build_args=build_args, target=req.arg("target") or None, no_cache=req.flag("nocache"),
            pull=req.flag("pull"), labels=labels, quiet=quiet, network=network,
            platform=req.arg("platform") or None, add_hosts=extra_hosts, cache_from=cache_from, every_step=True)
        out = _Out(req.conn)
        out.start()  # as Docker's: whatever goes wrong from here on is said in the stream
        _reporting(ctx, out, pulling=True)
        result = {}

        def work():
            with _Pump(out) as pump:
                result["id"] = build_uc.build(ctx, breq, None if quiet else _BuildSay(pump), pump.outputs)
            image_id = result["id"]
            out.emit({"aux": {"ID": image_id}})
            if quiet:
                out.emit({"stream": image_id + "\n"})
                return
            out.emit({"stream": f"Successfully built {image_id[7:19]}\n"})
            for t in shown:
                out.emit({"stream": f"Successfully tagged {t}\n"})
        _streamed(out, work, _run_code)
    finally:
        _remove_tree(ctx, workdir)


def _run_code(e: Exception) -> int | None:
    """A failed RUN step's exit code, which the build error's message ends with: Docker's
    ``errorDetail`` carries it as ``code`` (docker-py's BuildError reads it)."""
    m = re.search(r"returned a non-zero code: (\d+)$", getattr(e, "message", ""))
    return int(m[1]) if m else None


def _first(req: Request, name: str) -> str | None:
    """A query parameter's first value (Docker's Go server reads the first of a repeated one)."""
    values = req.query.get(name)
    return values[0] if values else None


def _cache_from(req: Request) -> tuple[str, ...]:
    """``cachefrom``: a JSON list of image names."""
    value = _first(req, "cachefrom")
    if not value:
        return ()
    try:
        names = json.loads(value)
    except ValueError:
        raise UsageError("invalid JSON in cachefrom", "give a JSON list of image names") from None
    if names is None:
        return ()
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UsageError("cachefrom must be a JSON list of image names")
    return tuple(n for n in names if n)


def _remove_tree(ctx: Context, path: str) -> None:
    from layers.store import remove_trees
    with contextlib.suppress(OSError):
        remove_trees([path])  # the user's own files (read-only directories made writable)
    if os.path.lexists(path):
        ctx.userns_call(remove_trees, [path])


def _unpack_as_root(tar: str, dest: str) -> None:
    """In the user namespace: unpack the context (read-only directories are no obstacle to root
    there), every file then root's, that is the user's (Docker ignores the context's owners)."""
    from layers.unpack import unpack_layer
    unpack_layer(tar, dest, what="build context", archive=True)
    for top, dirs, files in os.walk(dest):
        for name in dirs + files:
            os.lchown(os.path.join(top, name), 0, 0)


def _unpack_context(ctx: Context, body: str, context: str, dockerfile: str) -> tuple[str | None, str | None]:
    """Unpack the build context ``body`` into ``context``; (the Dockerfile's path inside it, None),
    or (None, the Dockerfile's text) when the body is a Dockerfile alone."""
    with open(body, "rb") as f:
        head = f.read(512)
    if not head:
        raise UsageError("the build context is empty", "send a tar of the context (or a Dockerfile) as the body")
    from layers.unpack import compression_of, is_archive, open_decompressed
    if not is_archive(head):
        with open(body, "rb") as f:
            return None, f.read().decode("utf-8", "replace")
    if compression_of(head):  # unpacked from a plain tar: the one the docker CLI sends may need padding
        plain = body + ".tar"
        try:
            with open(body, "rb") as raw, open(plain, "wb") as dst:
                shutil.copyfileobj(open_decompressed(raw), dst, 1 << 20)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise UsageError(f"the build context is not a readable compressed tar ({e})") from None
        os.replace(plain, body)
    with open(body, "ab") as f:
        # Go's tar readers take a tar whose last member is not padded to 512 bytes, and no
        # end-of-archive blocks: the docker CLI sends one when it adds a Dockerfile from
        # outside the context. Python's stream reader needs both.
        f.write(b"\0" * (-f.tell() % 512 + 1024))
    ctx.userns_call(_unpack_as_root, body, context)
    path = os.path.normpath(os.path.join(context, dockerfile.lstrip("/")))
    if path != context and not path.startswith(context + os.sep):
        raise UsageError(f"the Dockerfile {dockerfile} is outside the build context")
    return path, None


class _BuildSay:
    """The engine's build messages as Docker's classic builder words them: ``Step 1/3 : FROM x``,
    `` ---> 1a2b3c4d5e6f``; the engine's closing lines are replaced by Docker's (aux ID,
    ``Successfully built``, ``Successfully tagged``)."""

    def __init__(self, pump: _Pump):
        self.pump = pump
        self.done = False

    def __call__(self, line: str) -> None:
        if self.done:
            return
        if line.startswith("COMMIT"):
            self.done = True
            return
        m = re.match(r"^STEP (\d+)/(\d+): (.*)$", line, re.S)
        if m:
            line = f"Step {m[1]}/{m[2]} : {m[3]}"
        elif line.startswith("--> Using cache "):
            line = f" ---> Using cache\n ---> {line[len('--> Using cache '):]}"
        elif line.startswith("--> "):
            line = " ---> " + line[4:]
        self.pump.say(line + "\n")


class _Pump:
    """Within it, fds 1 and 2 (where the engine puts its own warnings) go into the stream as
    ``{"stream": ...}`` messages, and so do what RUN steps write to ``outputs`` (their stdout,
    their stderr): their stderr as Docker's classic builder sends it, each line in red
    (``ESC[91m`` ... ``ESC[0m``). ``say`` first passes on what came before it, so that the order
    is kept."""

    def __init__(self, out: _Out):
        import codecs
        self.out = out
        self.decoders = [codecs.getincrementaldecoder("utf-8")("replace") for _ in range(2)]
        self.partial = ""  # stderr's unfinished line

    def __enter__(self) -> _Pump:
        sys.stdout.flush()
        sys.stderr.flush()
        self.r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.r_err, w_err = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.set_blocking(w, True)
        os.set_blocking(w_err, True)
        self.saved = os.dup(1), os.dup(2)
        os.dup2(w, 1)
        os.dup2(w, 2)
        self.outputs = (w, w_err)  # the RUN steps' (the engine dups them onto 1 and 2 for a step)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="build-output", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            pass
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])
        for fd in self.outputs:
            os.close(fd)
        self.stop.set()
        self.thread.join()
        try:
            with self.out.lock:
                self._drain()  # what is left (a process still holding a pipe is not waited for)
                self._flush_partial()
        finally:
            os.close(self.r)
            os.close(self.r_err)

    def _run(self) -> None:
        ends: set[int] = set()
        while not self.stop.is_set() and len(ends) < 2:
            try:
                ready, _, _ = select.select([fd for fd in (self.r, self.r_err) if fd not in ends], [], [], 0.1)
                with self.out.lock:
                    if not ready:
                        self._flush_partial()  # a line that stays unfinished is not held back
                    for fd in ready:
                        if self._read(fd):
                            ends.add(fd)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client left: the build notices at its next message

    def _drain(self) -> None:
        for fd in (self.r, self.r_err):
            self._read(fd)

    def _read(self, fd: int) -> bool:
        """Pass on what the pipe holds; True at its end (no writer left)."""
        err = fd == self.r_err
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return False
            if not data:
                return True
            text = self.decoders[err].decode(data)
            if not text:
                continue
            if not err:
                self._flush_partial()
                self.out.emit({"stream": text})
                continue
            *lines, self.partial = (self.partial + text).split("\n")
            for line in lines:
                self.out.emit({"stream": f"\x1b[91m{line}\n\x1b[0m"})

    def _flush_partial(self) -> None:
        if self.partial:
            text, self.partial = self.partial, ""
            self.out.emit({"stream": f"\x1b[91m{text}\x1b[0m"})

    def say(self, text: str) -> None:
        with self.out.lock:
            self._drain()
            self._flush_partial()
            self.out.emit({"stream": text})
