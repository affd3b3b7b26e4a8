"""``build``: a Dockerfile built into an image of the store, with the runtime doing the work.

:class:`layers.build.Builder` decides what each instruction means; this module
is its :class:`Executor`: base images come from the store or a registry (as for
``run``), ``RUN`` steps are containers started by the runtime in the same user
namespace and store as ``run``'s, file steps go through
:mod:`rootless.runtime.buildfs`, and every layer a step makes is stored as a
blob and unpacked at once, ready for the next step. Nothing is tagged unless
the whole build succeeds; a step's temporary container and directories are
gone when the step ends, whatever its outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from rootless.base import proc
from rootless.base.errors import RootlessError, UsageError
from rootless.base.valuetype import KeywordRecord, keyword_record
from rootless.engine import images

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context

@keyword_record
class BuildRequest(KeywordRecord):
    """A build as both faces ask for it: the context directory, the Dockerfile (a path in it, or
    its text), the tags and the flags."""
    context: str
    dockerfile: str | None = None
    dockerfile_text: str | None = None
    tags: tuple[str, ...] = ()
    build_args: dict[str, str] = {}  # noqa: RUF012 - never changed
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = {}  # noqa: RUF012 - never changed
    quiet: bool = False
    network: str = "slirp4netns"  # the RUN steps': a mode, or a user-defined network's name or id
    platform: str | None = None
    add_hosts: tuple[str, ...] = ()  # the RUN steps' /etc/hosts lines, HOST:IP
    cache_from: tuple[str, ...] = ()  # images whose steps may serve as cache (none given: the local cache)
    every_step: bool = False  # say every step's cache use and id (the API: Docker's classic builder does)


class BuildCancelled(RootlessError):
    """SIGINT, SIGTERM or SIGHUP stopped the build; it exits as a shell reports the signal
    (128 + its number: 130 for ctrl-C), after the step's container and the build's files are gone."""

    def __init__(self, sig: int):
        import signal
        super().__init__(f"build cancelled by {signal.Signals(sig).name}", exit_code=128 + sig)


class _Cancel(BaseException):
    """The signal on its way out: no ``except Exception`` (nor RootlessError) of a step takes it."""

    def __init__(self, sig: int):
        super().__init__(sig)
        self.sig = sig


@contextlib.contextmanager
def cancel_on_signals():
    """For the CLI: SIGINT, SIGTERM and SIGHUP cancel the build as an exception (a running RUN
    step's container is killed first, by ``containers.start(tied=True)``), so that every
    ``finally`` tidies up; a second signal does not interrupt the tidying."""
    import signal
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def cancel(sig, _frame):
        for s in sigs:
            signal.signal(s, signal.SIG_IGN)
        raise _Cancel(sig)
    old = {s: signal.signal(s, cancel) for s in sigs}
    try:
        yield
    except _Cancel as e:
        raise BuildCancelled(e.sig) from None
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def build(ctx: Context, req: BuildRequest, say=None, outputs: tuple[int, int] | None = None) -> str:
    """Build; the new image's id. ``say(line)`` shows progress (None: silent). ``outputs``: the
    descriptors a RUN step's stdout and stderr go to (None: both to stderr, as the CLI wants)."""
    from layers import build as builder
    from layers import buildctx, dockerfile, reference
    from layers.manifest import host_platform
    from layers.store import LayerRef
    tags, shown = [], []
    for t in req.tags:
        r = reference.parse(t)
        tags.append(f"{r.repository}:{r.tag or 'latest'}")
        shown.append(f"{r.familiar_repository}:{r.tag or 'latest'}")
    bctx = buildctx.BuildContext.open(req.context)
    text, path = _dockerfile(req, bctx)
    df = dockerfile.parse(text, path)
    if ctx.overlay_method() == "copy":
        raise RootlessError("building needs an overlay filesystem (kernel overlay or fuse-overlayfs)",
                            "install fuse-overlayfs, or use a kernel that mounts overlay in a user namespace")
    mode, user_networks = build_network(ctx, req.network)
    add_hosts = tuple(parse_add_host(text) for text in req.add_hosts)
    sources = cache_sources(ctx, req.cache_from) if req.cache_from else None
    ex = Executor(ctx, say or (lambda _t: None), req.quiet, mode,
                  add_hosts=add_hosts, networks=user_networks, outputs=outputs)
    plat = host_platform()
    opts = builder.BuildOptions(build_args=dict(req.build_args), target=req.target, no_cache=req.no_cache,
                                pull="always" if req.pull else "missing", labels=dict(req.labels),
                                network=mode, platform=req.platform, cache_sources=sources,
                                every_step=req.every_step)
    try:
        b = builder.Builder(df, bctx, opts, ex, ctx.store, ctx.paths.root, (plat.os, plat.architecture, plat.variant))
        config, layers = b.build()
    finally:
        ex.close()
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    ctx.store.put_blob_bytes(config_bytes)
    refs = [LayerRef(lr["diff_id"], lr["blob"], lr["media_type"], lr.get("size", 0)) for lr in layers]
    image, _ = ctx.store.register(config_bytes, refs, tags)
    for t in shown:  # Docker's events for the build's names
        images.image_event(ctx, "tag", image["id"], t)
    if say:
        say(f"COMMIT {' '.join(shown)}".rstrip())
        say(f"--> {image['id'][7:19]}")
        for t in shown:
            say(f"Successfully tagged {t}")
    return image["id"]


_MODES = {"": "slirp4netns", "default": "slirp4netns", "bridge": "slirp4netns", "slirp4netns": "slirp4netns",
          "host": "host", "none": "none"}


def build_network(ctx: Context, name: str) -> tuple[str, tuple]:
    """(the RUN steps' network mode, the user-defined networks they join: [(id, aliases)]) for
    ``--network``/``networkmode``: a mode rootless has, or a user-defined network (its members
    that run are reached by name, as by ``run --network NAME``). Another container's namespace
    is refused; an unknown network is Docker's "network NAME not found"."""
    if name in _MODES:
        return _MODES[name], ()
    if name.startswith("container:"):
        raise UsageError(f"network mode {name!r} is not supported for builds",
                         "use default, host, none or the name of a network")
    from rootless.engine import networks
    net = networks.find(ctx.paths, name)
    if net.get("predefined"):  # given by id
        return networks.PREDEFINED[net["name"]][1], ()
    return ("none" if net.get("internal") else "slirp4netns"), ((net["id"], ()),)


def parse_add_host(text: str) -> tuple[str, str]:
    """A RUN step's /etc/hosts line, HOST:IP (or HOST=IP), as ``--add-host`` takes it."""
    from netstack import spec as netspec
    return netspec.parse_add_host(text)


def cache_sources(ctx: Context, names: tuple[str, ...]) -> tuple[dict, ...]:
    """The ``--cache-from`` images there are (a missing one is skipped, as Docker's classic
    builder does): each one's history and layers, unpacked, ready to serve as steps."""
    from rootless.base.errors import ImageNotFound
    out = []
    for name in names:
        try:
            rec = ctx.store.resolve(name)
        except (ImageNotFound, UsageError):
            continue
        config = ctx.store.config(rec)
        ctx.store.unpack_layers(images.layer_refs(rec))
        out.append({"history": list(config.get("history") or []), "layers": [dict(lr) for lr in rec["layers"]]})
    return tuple(out)


def _dockerfile(req: BuildRequest, bctx) -> tuple[str, str]:
    """(text, name shown in errors). A Dockerfile in the context (the default one, or ``-f``
    naming a path inside it) is read by the context's rules: a symlink is followed inside the
    context only, as Docker's builder resolves it there, so a link out of it (to a file of the
    user's) is refused and nothing of that file is read. ``-f`` naming a file outside the context
    directory is read where it is, as in Docker."""
    if req.dockerfile_text is not None:
        return req.dockerfile_text, "Dockerfile"
    rel = "Dockerfile"
    if req.dockerfile:
        path = req.dockerfile
        if not os.path.isabs(path) and not os.path.exists(path):
            path = os.path.join(req.context, path)
        inside = _inside(path, req.context, bctx.root)
        if inside is None:
            return _read_outside(path), path
        rel = inside
    text = bctx.read_text(rel, "the Dockerfile")
    if text is None:
        raise UsageError(f"cannot find the Dockerfile {os.path.join(req.context, rel)}",
                         "give it with -f FILE, or put a Dockerfile in the context")
    return text, os.path.basename(rel)


def _read_outside(path: str) -> str:
    """A ``-f`` Dockerfile outside the context directory: read where it is."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        raise UsageError(f"cannot find the Dockerfile {path}",
                         "give it with -f FILE, or put a Dockerfile in the context") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the Dockerfile {path}: {e}") from None


def _inside(path: str, context: str, root: str) -> str | None:
    """``path`` relative to the context directory (as given, or ``root``, its real path) when it
    names a file inside it, without following any link; None when it is outside."""
    where = os.path.abspath(path)
    for base in (os.path.abspath(context), root):
        if where.startswith(base.rstrip("/") + "/"):
            return os.path.relpath(where, base)
    return None


class Executor:
    """The machine side of a build (see :class:`layers.build.Executor`)."""

    def __init__(self, ctx: Context, say, quiet: bool, network: str, add_hosts: tuple = (), networks: tuple = (),
                 outputs: tuple[int, int] | None = None):
        import tempfile
        self.ctx = ctx
        self.say = say
        self.quiet = quiet
        self.network = network  # the build's mode: its RUN steps join ``networks`` (unless RUN --network)
        self.add_hosts = add_hosts
        self.networks = networks
        self.outputs = outputs
        os.makedirs(ctx.paths.tmp, exist_ok=True)
        self.tmp = tempfile.mkdtemp(dir=ctx.paths.tmp, prefix=f"build-{os.getpid()}-")  # pid: see layers.leftovers
        self.n = 0

    def close(self) -> None:
        from layers.store import remove_trees
        try:
            os.rmdir(self.tmp)  # a build whose every step came from the cache made nothing here
        except FileNotFoundError:
            pass
        except OSError:
            self.ctx.userns_call(remove_trees, [self.tmp])  # files of subordinate uids: from inside

    def now(self) -> str:
        from rootless.base.clock import now_iso
        return now_iso()

    # ---- base images ------------------------------------------------------------------------
    def base(self, name: str, platform: str | None, pull: str):
        rec = images.ensure_image(self.ctx, name, pull, images.RegistryOptions(platform=platform, quiet=self.quiet))
        self.ctx.store.unpack_layers(images.layer_refs(rec))
        return rec["id"], self.ctx.store.config(rec), [dict(lr) for lr in rec["layers"]]

    # ---- RUN --------------------------------------------------------------------------------
    def run(self, stage, step: dict) -> dict:
        from layers.build import BuildError
        from rootless.engine import containers
        from rootless.runtime import names, records, state
        from rootless.runtime.spec import DEFAULT_PATH, ContainerSpec
        if not stage.layers:
            raise BuildError(f"{step['where']}: {step['text']}: the stage has no files to run a command in "
                             "(FROM scratch without COPY)", exit_code=1)
        if step["network"] == "slirp4netns":
            self.ctx.slirp_features()  # no slirp4netns: one line naming the fix (or --network none)
        cid = names.new_id()
        env = list(step["env"])
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, f"PATH={DEFAULT_PATH}")
        cspec = ContainerSpec(
            id=cid, name=f"build-{cid[:12]}", image_id=stage.base_id, image_name="(build step)",
            layers=tuple(stage.diff_ids()), argv=tuple(step["argv"]), env=tuple([f"HOSTNAME={cid[:12]}"] + env),
            user=step["user"], workdir=step["workdir"], hostname=cid[:12], network=step["network"],
            labels={"io.rootless.build": "step",  # and its build, to tell a killed build's (engine.system.sweep)
                    "io.rootless.build.owner": f"{os.getpid()}:{state.pid_start_time(os.getpid())}"},
            add_hosts=self.add_hosts, networks=self.networks if step["network"] == self.network else (),
            log={"driver": "none", "max_size": 0, "max_file": 1},
            mounts=tuple(self._mount(m) for m in step["mounts"]),
            no_new_privs=False)  # Docker's RUN steps may run setuid programs (sudo, su, ping)
        rec = state.create(self.ctx.paths, cspec, self.ctx.overlay_method(), generated_name=False)
        try:
            try:
                with self._output() as captured:
                    code = containers.start(self.ctx, rec, attached=True, stdin=False, tied=True)
            except RootlessError as e:
                self._replay(captured)
                raise BuildError(f"{step['where']}: {step['text']}: {e.message}", e.hint, exit_code=1) from None
            if code != 0:
                self._replay(captured)
                # Docker's sentence (clients match it: docker-py's BuildError), after where it was
                raise BuildError(f"{step['where']}: The command '{' '.join(step['argv'])}' returned a non-zero "
                                 f"code: {code}", exit_code=1)
            return self._store_layer(self.ctx.paths.upper(cid), rec.get("rootfs_method", "kernel"))
        finally:
            records.remove_container_files(self.ctx, cid)
            records.remove_runtime(self.ctx.paths.run_dir(cid))

    def _mount(self, m: dict) -> dict:
        import hashlib
        if m["type"] == "cache":
            d = os.path.join(self.ctx.paths.root, "build-cache-mounts",
                             hashlib.sha256(m["id"].encode()).hexdigest()[:32])
            if not os.path.isdir(d):
                os.makedirs(d, 0o700, exist_ok=True)
                self.ctx.userns_call(_prepare_cache_dir, d, m["uid"], m["gid"], m["mode"])
            return {"type": "bind", "source": d, "target": m["target"], "rw": m["rw"]}
        if m["type"] == "tmpfs":
            return {"type": "tmpfs", "target": m["target"], "rw": True, "options": ""}
        if m["type"] == "script":  # a RUN heredoc with a #! line, executed as a file
            self.n += 1
            path = os.path.join(self.tmp, f"script-{self.n}")
            with open(path, "w") as f:
                f.write(m["content"])
            os.chmod(path, 0o755)
            return {"type": "bind", "source": path, "target": m["target"], "rw": False}
        return {"type": "bind", "source": m["source"], "target": m["target"], "rw": False}

    @contextlib.contextmanager
    def _output(self):
        """The step's output: on stderr (stdout carries only the image id), or kept aside with -q,
        or to ``outputs`` (the API's stream)."""
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        captured = None
        try:
            if self.quiet:
                import tempfile
                captured = tempfile.TemporaryFile(dir=self.tmp)
                os.dup2(captured.fileno(), 1)
                os.dup2(captured.fileno(), 2)
            elif self.outputs:
                os.dup2(self.outputs[0], 1)
                os.dup2(self.outputs[1], 2)
            else:
                os.dup2(2, 1)
            yield captured
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])

    def _replay(self, captured) -> None:
        """With -q, a failed step's output is shown after all (its last 64 KiB)."""
        if captured is None:
            return
        captured.seek(0, os.SEEK_END)
        size = captured.tell()
        captured.seek(max(0, size - 65536))
        sys.stderr.buffer.write(captured.read())
        sys.stderr.flush()

    # ---- file steps ------------------------------------------------------------------------
    def files(self, stage, ops: list[dict]) -> dict | None:
        from layers.overlay import RootfsPlan
        from rootless.runtime import buildfs
        self.n += 1
        d = os.path.join(self.tmp, f"step-{self.n}")
        for sub in ("upper", "work", "root", "empty"):
            os.makedirs(os.path.join(d, sub), 0o755)
        method = self.ctx.overlay_method()
        lowers = tuple(self.ctx.store.layer_dir(x) for x in reversed(stage.diff_ids())) or (os.path.join(d, "empty"),)
        plan = RootfsPlan(method=method, lowers=lowers, upper=os.path.join(d, "upper"), work=os.path.join(d, "work"),
                          merged=os.path.join(d, "root"), copy_dir=os.path.join(d, "copy"), volatile=True)
        views: dict[str | int, str] = {"root": plan.merged}  # the root, and each copy_from source by index
        src_plans = {}
        for i, op in enumerate(ops):
            if op["op"] == "copy_from":
                view = os.path.join(d, f"src-{i}")
                os.makedirs(view, 0o755)
                views[i] = view
                src_plans[i] = self._readonly_plan(op["layers"], view, os.path.join(d, "empty"))
        out = os.path.join(d, "layer.tar")
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)  # a blob's mode
        try:
            info = self.ctx.userns_call(buildfs.files_step, plan, ops, src_plans, views, fd)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        if info.get("empty"):
            return None
        return self._adopt(out, info, plan.upper)

    def stages(self, jobs, work, done) -> None:
        """The stages of the build, independent ones at once (:mod:`rootless.engine.buildjobs`)."""
        from rootless.engine import buildjobs
        buildjobs.run(self, jobs, work, done)

    def _readonly_plan(self, diff_ids: list[str], view: str, empty: str):
        """The read-only root of ``diff_ids`` (bottom first), to be mounted at ``view``."""
        from layers.overlay import RootfsPlan
        lowers = tuple(self.ctx.store.layer_dir(x) for x in reversed(diff_ids)) or (empty,)
        return RootfsPlan(method=self.ctx.overlay_method(), lowers=lowers[1:] or (empty,), upper=lowers[0],
                          work="", merged=view, copy_dir="")

    # ---- content digests (the cache's keys for what a step reads from another stage) ---------------
    def selection_digest(self, layers: list[dict], paths: list[str]) -> str:
        """Worked out once per stack of layers and paths (layers do not change: kept beside the
        build cache, as a layer's own digest)."""
        from layers import buildcache
        ids = [lr["diff_id"] for lr in layers]
        memo = buildcache.content_path(self.ctx.paths.root, buildcache.key("selection", [ids, paths]))
        known = _read_memo(memo)
        if known:
            return known
        digest = self._selection_digest(layers, paths)
        _write_memo(memo, digest)
        return digest

    def _selection_digest(self, layers: list[dict], paths: list[str]) -> str:
        from rootless.runtime import buildfs
        self.n += 1
        d = os.path.join(self.tmp, f"digest-{self.n}")
        for sub in ("view", "empty"):
            os.makedirs(os.path.join(d, sub), 0o755)
        plan = self._readonly_plan([lr["diff_id"] for lr in layers], os.path.join(d, "view"),
                                   os.path.join(d, "empty"))
        try:
            return self.ctx.userns_call(buildfs.digest_selection, plan, os.path.join(d, "view"), paths)
        finally:
            for sub in ("view", "empty"):
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(d, sub))
            with contextlib.suppress(OSError):
                os.rmdir(d)

    def layer_digest(self, layer: dict) -> str:
        """A layer's content digest, worked out once per layer (kept beside the build cache)."""
        from layers import buildcache
        from rootless.runtime import buildfs
        memo = buildcache.content_path(self.ctx.paths.root, layer["diff_id"])
        known = _read_memo(memo)
        if known:
            return known
        self.ctx.store.unpack_layers([_ref(layer)])
        digest = self.ctx.userns_call(buildfs.digest_tree, self.ctx.store.layer_dir(layer["diff_id"]))
        _write_memo(memo, digest)
        return digest

    # ---- layers ------------------------------------------------------------------------------
    def _store_layer(self, upper: str, method: str) -> dict:
        """The step's writable layer into the store. Kernel overlay: the upper directory itself,
        settled, becomes the unpacked layer, and only the tar's recipe is written (its tar is
        re-created from both when pushed or saved); one sync for both
        (:meth:`layers.store.ImageStore.adopt_step_recipe`). Otherwise its tar is written once,
        in the store's temporary space, as the blob, then unpacked."""
        from rootless.runtime import fsaccess
        self.n += 1
        out = os.path.join(self.tmp, f"layer-{self.n}.tar")
        recipe = os.path.join(self.tmp, f"layer-{self.n}.tarsplit") if method == "kernel" else None
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)  # a blob's mode
        # the step's files go to disk while they are read for the layer's digest: the one sync
        # before the layer is published then finds little left to write
        flusher = proc.start_syncfs(upper)
        try:
            if recipe:
                os.close(os.open(recipe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
            info = self.ctx.userns_call(fsaccess.step_layer, upper, fd, recipe)
        except BaseException:
            if recipe:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(recipe)
            raise
        finally:
            os.close(fd)
            proc.reap(flusher)
        if recipe:
            try:
                if info.get("settled"):
                    os.unlink(out)
                    from layers.archive import MT_LAYER_TAR
                    from layers.store import LayerRef
                    self.ctx.store.adopt_step_recipe(recipe, info["diff_id"], upper)
                    return LayerRef(info["diff_id"], info["diff_id"], MT_LAYER_TAR, info["size"]).to_json()
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(recipe)
        return self._adopt(out, info, upper)

    def _adopt(self, tar: str, info: dict, upper: str) -> dict:
        """A step's layer into the store: ``tar`` as its blob, and ``upper`` as the layer when it was
        settled (else the blob is unpacked)."""
        from layers.archive import MT_LAYER_TAR
        from layers.store import LayerRef
        try:
            taken = self.ctx.store.adopt_step_layer(tar, info["diff_id"], upper if info.get("settled") else None)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tar)
        layer = LayerRef(info["diff_id"], info["diff_id"], MT_LAYER_TAR, info["size"])
        if not taken:
            self.ctx.store.unpack_layers([layer])
        return layer.to_json()

    # ---- ADD URL ----------------------------------------------------------------------------
    def fetch(self, url: str, checksum: str | None):
        import hashlib
        import urllib.error
        import urllib.request
        from email.utils import parsedate_to_datetime

        from layers.build import BuildError
        self.n += 1
        path = os.path.join(self.tmp, f"url-{self.n}")
        h = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as f:
                modified = resp.headers.get("Last-Modified")
                while chunk := resp.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise BuildError(f"{url}: download failed: {reason}", exit_code=1) from None
        digest = "sha256:" + h.hexdigest()
        if checksum and checksum != digest:
            raise BuildError(f"{url}: checksum mismatch: expected {checksum}, got {digest}", exit_code=1)
        mtime = None
        if modified:
            with contextlib.suppress(TypeError, ValueError):
                mtime = parsedate_to_datetime(modified).timestamp()
        return path, digest, mtime


def _read_memo(path: str) -> str | None:
    try:
        with open(path) as f:
            known = f.read().strip()
    except OSError:
        return None
    return known if known.startswith("sha256:") else None


def _write_memo(path: str, digest: str) -> None:
    from rootless.base import atomic
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    atomic.write_bytes(path, digest.encode() + b"\n", sync=False)  # a memo: lost, it is worked out again


def _ref(lr: dict):
    from layers.store import LayerRef
    return LayerRef(lr["diff_id"], lr["blob"], lr["media_type"], lr.get("size", 0))


def _prepare_cache_dir(path: str, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def builder_prune(ctx: Context) -> tuple[int, int]:
    """``builder prune``: forget the build cache and delete the layers only it kept; (entries, bytes)."""
    from layers import buildcache
    from layers.store import remove_trees
    from rootless.base import locking
    paths = buildcache.entries(ctx.paths.root)
    cached = buildcache.layers_of(paths)
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    with locking.locked(ctx.paths.store_lock):
        recs = ctx.store.images()
        keep_layers = {lr["diff_id"] for r in recs for lr in r["layers"]} | images.layers_in_use(ctx)
        keep_blobs = {lr["blob"] for r in recs for lr in r["layers"]}
        doomed = {lr["diff_id"]: lr for lr in cached
                  if lr["diff_id"] not in keep_layers and ctx.store.layer_present(lr["diff_id"])}
        freed = sum(lr.get("size", 0) for lr in doomed.values())
        ctx.store.remove_layers(doomed)  # one user-namespace helper for all of them
        ctx.store.remove_blobs({lr["blob"] for lr in cached} - keep_blobs)
    import shutil
    shutil.rmtree(buildcache.content_path(ctx.paths.root, ""), ignore_errors=True)  # the layers' digests
    mounts = os.path.join(ctx.paths.root, "build-cache-mounts")
    if os.path.isdir(mounts):
        ctx.userns_call(remove_trees, [mounts])
    return len(paths), freed


# ---- what the CLI hands over -----------------------------------------------------------------
@contextlib.contextmanager
def context_from(context: str, file: str | None, stdin):
    """(context directory, Dockerfile path, Dockerfile text) for ``build CONTEXT [-f FILE]``:
    ``CONTEXT`` ``-`` reads a Dockerfile or a tar (plain or compressed) of the context from stdin;
    ``-f -`` reads the Dockerfile alone from stdin."""
    import tempfile
    if context != "-":
        if not os.path.isdir(context):
            raise UsageError(f"the build context {context} is not a directory", "give a directory, or - for stdin")
        if file == "-":
            yield context, None, stdin.read().decode("utf-8", "replace")
        else:
            yield context, file, None
        return
    data = stdin.read()
    with tempfile.TemporaryDirectory(prefix="rootless-context-") as d:
        from layers.unpack import is_archive
        if is_archive(data[:512]):
            import io

            from layers.unpack import unpack_layer
            unpack_layer(io.BufferedReader(io.BytesIO(data)), d, what="build context", archive=True)
            yield d, file, None
        else:
            yield d, None, data.decode("utf-8", "replace")


def parse_build_args(items: list[str], environ=None) -> dict[str, str]:
    """``--build-arg K=V``; ``K`` alone takes the environment's value, or is left out (Docker)."""
    env = os.environ if environ is None else environ
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid --build-arg {item!r}", "use KEY=VALUE")
        if eq:
            out[key] = value
        elif key in env:
            out[key] = env[key]
    return out
