"""Image use cases: load, import, list, history, inspect, remove, prune, save, and the
registries (pull, push, tag, login, logout). Each takes the Context; the CLI renders the result.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import namedtuple
from collections.abc import Iterator, Sequence

from rootless.base import config as configmod
from rootless.base.errors import RootlessError
from rootless.engine.context import Context


def load(ctx: Context, path: str) -> list[str]:
    from layers import archive, reference
    lines = []
    for img in archive.load(ctx.store, path):
        if img.tags:
            for t in img.tags:
                ref = reference.parse(t)
                lines.append(f"Loaded image: {ref.familiar_repository}:{ref.tag}")
        else:
            lines.append(f"Loaded image ID: {img.id}")
    return lines


def load_stream(ctx: Context, stream) -> list[str]:
    """``load`` of an archive read from ``stream`` (``docker load < image.tar``, ``save | load``):
    kept in the store's temporary directory while it loads, then removed (a full disk: one line
    naming the store)."""
    import tempfile
    os.makedirs(ctx.paths.tmp, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="load-", suffix=".tar", dir=ctx.paths.tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                while chunk := stream.read(1 << 20):
                    f.write(chunk)
            except OSError as e:
                from rootless.base.errors import from_oserror
                raise from_oserror(f"keep the archive from stdin in {ctx.paths.tmp}", e) from None
        try:
            return load(ctx, path)
        except RootlessError as e:  # the spooled file is no name the user knows
            e.message = e.message.replace(f"archive {path}", "the archive from stdin").replace(path, "stdin")
            raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def import_rootfs(ctx: Context, path: str, name: str | None, changes: Sequence[str] = ()) -> str:
    """``import``: a rootfs tarball becomes a one-layer image; ``changes`` (``-c``: Dockerfile
    instructions, checked all before anything is read) set its config."""
    from layers import archive, imageconfig
    config = imageconfig.apply_changes({}, list(changes)) if changes else None
    return archive.import_rootfs(ctx.store, path, name, config).id


ImageRow = namedtuple("ImageRow", "repository tag id created size digest labels", defaults=("<none>", {}))


def images(ctx: Context, filters: Sequence[str] = ()) -> list[ImageRow]:
    """``images``: a row per tag (one for an untagged image), newest first, filtered as Docker:
    ``dangling=true|false``, ``reference=PATTERN``, ``before=IMAGE``, ``since=IMAGE``,
    ``label=KEY[=VALUE]``."""
    from layers import reference
    recs = ctx.store.images(with_shared=True)
    checks = [_image_filter(ctx, f) for f in filters]
    rows = []
    for rec in recs:
        tags = rec.get("repo_tags") or []
        labels = None
        for t in tags or [None]:
            ref = reference.parse(t) if t else None
            row = ImageRow(ref.familiar_repository if ref else "<none>", ref.tag if ref else "<none>", rec["id"],
                           rec.get("created", ""), rec.get("size", 0), _digest_for(rec, ref))
            if any(c.needs_labels for c in checks) and labels is None:
                labels = (ctx.store.config(rec).get("config") or {}).get("Labels") or {}
            row = row._replace(labels=labels or {})
            if all(c(rec, row) for c in checks):
                rows.append(row)
    return rows


def _digest_for(rec: dict, ref) -> str:
    for rd in rec.get("repo_digests", []):
        repo, _, digest = rd.partition("@")
        if ref is None or repo == ref.repository:
            return digest
    return "<none>"


class _Filter:
    def __init__(self, fn, needs_labels: bool = False):
        self.fn, self.needs_labels = fn, needs_labels

    def __call__(self, rec: dict, row: ImageRow) -> bool:
        return self.fn(rec, row)


def _image_filter(ctx: Context, text: str) -> _Filter:
    from rootless.base.errors import UsageError
    key, eq, value = text.partition("=")
    if not eq:
        raise UsageError(f"bad filter {text!r}", "use KEY=VALUE: dangling, reference, before, since, label")
    if key == "dangling":
        if value not in ("true", "false"):
            raise UsageError(f"invalid filter 'dangling={value}'", "use dangling=true or dangling=false")
        return _Filter(lambda rec, _row: (not rec.get("repo_tags")) == (value == "true"))
    if key == "reference":
        match = _path_pattern(value)
        return _Filter(lambda _rec, row: row.repository != "<none>" and bool(
            match(f"{row.repository}:{row.tag}") or match(row.repository)))
    if key in ("before", "since"):
        pivot = ctx.store.resolve(value).get("created", "")
        if key == "before":
            return _Filter(lambda rec, _row: rec.get("created", "") < pivot)
        return _Filter(lambda rec, _row: rec.get("created", "") > pivot)
    if key == "label":
        lkey, leq, lvalue = value.partition("=")
        return _Filter(lambda _rec, row: lkey in row.labels and (not leq or row.labels[lkey] == lvalue),
                       needs_labels=True)
    raise UsageError(f"invalid filter {key!r}", "use dangling, reference, before, since or label")


def _path_pattern(pattern: str):
    """A reference pattern as Go's ``path.Match`` reads it (Docker's ``reference`` filter and
    ``images REPO``): ``*`` and ``?`` stop at ``/``; the match function of a whole name."""
    import re
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                neg = body[:1] == "^"
                body = body[1:] if neg else body
                out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z").match


HistoryRow = namedtuple("HistoryRow", "id created created_by size comment empty")


def history(ctx: Context, name: str) -> list[HistoryRow]:
    """``history``: the config's history, newest first, each layer's size beside the step that made it."""
    rec = ctx.store.resolve(name)
    config = ctx.store.config(rec)
    layers = list(rec["layers"])
    entries = config.get("history") or [{"created": config.get("created", ""), "created_by": ""}
                                         for _ in layers]
    rows = []
    li = 0
    for h in entries:
        empty = bool(h.get("empty_layer"))
        size = 0
        if not empty and li < len(layers):
            size = layers[li].get("size", 0)
            li += 1
        rows.append(HistoryRow("<missing>", h.get("created", ""), h.get("created_by", ""), size,
                               h.get("comment", ""), empty))
    rows.reverse()
    if rows:
        rows[0] = rows[0]._replace(id=rec["id"])
    return rows


def image_prune(ctx: Context, all_: bool) -> tuple[list[str], int]:
    """Remove dangling images (``-a``: every image no container uses) and partial downloads;
    (lines, bytes reclaimed)."""
    from rootless.runtime import state
    used = {r.get("spec", {}).get("image_id") for r in state.all_records(ctx.paths)}
    lines, reclaimed = [], 0
    for rec in ctx.store.images():
        if rec["id"] in used or (rec.get("repo_tags") and not all_):
            continue
        try:
            out = list(rmi(ctx, [rec["id"]], force=True))
        except RootlessError:
            continue
        lines += out
        reclaimed += rec.get("size", 0)
    reclaimed += ctx.store.drop_partials()  # what broken-off pulls downloaded, kept for going on
    return lines, reclaimed


def save(ctx: Context, names: list[str], output: str | None, fmt: str) -> None:
    from layers import save as savemod
    if not output and sys.stdout.isatty():
        raise RootlessError("refusing to write an archive to a terminal", "use -o FILE, or redirect stdout")
    savemod.save(ctx.store, names, output, fmt)


# The fields Docker's image Config always has (an imported image's config has none of them)
IMAGE_CONFIG_FIELDS = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
                       "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
                       "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
                       "OnBuild": None, "Labels": None}


def image_inspect(ctx: Context, name: str) -> dict:
    """Docker-compatible ``image inspect`` JSON."""
    from layers import reference
    rec = ctx.store.resolve(name)
    config = ctx.store.config(rec)
    tags = []
    for t in rec.get("repo_tags") or []:
        ref = reference.parse(t)
        tags.append(f"{ref.familiar_repository}:{ref.tag}")
    return {
        "Id": rec["id"], "RepoTags": tags, "RepoDigests": rec.get("repo_digests", []),
        "Created": config.get("created", ""), "Author": config.get("author", ""),
        "Config": {**IMAGE_CONFIG_FIELDS, **(config.get("config") or {})},
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""), "Size": rec.get("size", 0),
        "RootFS": {"Type": "layers", "Layers": [lr["diff_id"] for lr in rec["layers"]]},
        "History": config.get("history", []), "Parent": _parent(ctx, rec),
        **({"ReadOnly": True, "Store": rec["store"]} if rec.get("read_only") else {}),  # an additional store's
    }


def _parent(ctx: Context, rec: dict) -> str:
    """Docker's ``Parent``: the local image a commit was made from, while it is still here."""
    parent = rec.get("parent") or ""
    return parent if parent and any(i["id"] == parent for i in ctx.store.images()) else ""


def layers_in_use(ctx: Context) -> set[str]:
    """The layers some container (running or not) is made of."""
    from rootless.runtime import state
    return {d for r in state.all_records(ctx.paths) for d in r.get("spec", {}).get("layers", [])}


def rmi(ctx: Context, names: list[str], force: bool) -> Iterator[str]:
    """Remove images; yields Docker's ``Untagged:``/``Deleted:`` lines as they go, then raises for
    the names that could not be removed (after the others are gone)."""
    from rootless.runtime import state
    errors = []

    def in_use(image_id: str) -> list[str]:
        return [r["id"] for r in state.all_records(ctx.paths) if r.get("spec", {}).get("image_id") == image_id]

    for name in names:
        try:
            image_id = ctx.store.resolve(name)["id"]
            for line in ctx.store.remove(name, force, in_use, lambda: layers_in_use(ctx)):
                kind, _, what = line.partition(": ")  # Docker's events: untag per tag, then delete
                if kind == "Untagged":
                    image_event(ctx, "untag", image_id, what)
                elif kind == "Deleted":
                    image_event(ctx, "delete", image_id, image_id)
                yield line
        except RootlessError as e:
            errors.append(e)
    if errors:
        raise errors[0] if len(errors) == 1 else RootlessError("; ".join(str(e) for e in errors))


# ---- registries ------------------------------------------------------------------------
RegistryOptions = namedtuple("RegistryOptions", "tls_verify creds platform quiet",
                             defaults=(True, None, None, False))


def registry_options(tls_verify: str, creds: str | None = None, platform: str | None = None,
                     quiet: bool = False) -> RegistryOptions:
    """The CLI's registry flags (``--tls-verify true|false``, ``--creds``, ``--platform``, ``-q``)."""
    from rootless.base.errors import UsageError
    if tls_verify not in ("true", "false"):
        raise UsageError(f"--tls-verify takes true or false, not {tls_verify!r}")
    return RegistryOptions(tls_verify=tls_verify == "true", creds=creds, platform=platform, quiet=quiet)


def _registry_kw(ctx: Context, registry: str, opts: RegistryOptions) -> dict:
    """Connection settings for ``registry``: insecure (--tls-verify=false, or as Docker decides:
    ``layers.registry.is_insecure`` with the configuration's list and the registry's own setting), CA directory
    (certs.d, as Docker's), credentials (--creds USER:PASS). A blocked registry is an error."""
    settings = ctx.config.registries.get(registry, {})
    if settings.get("blocked"):
        from layers.registry import RegistryError
        raise RegistryError(f"registry {registry} is blocked by the configuration ({ctx.config.path})",
                            f'remove blocked = true from [registries."{registry}"]')
    creds = None
    if opts.creds:
        user, sep, password = opts.creds.partition(":")
        if not sep or not user:
            raise RootlessError("--creds takes USER:PASSWORD")
        creds = (user, password)
    ca_dir = None
    for base in (os.path.join(os.path.dirname(ctx.config.path or configmod.config_path()), "certs.d"),
                 "/etc/containers/certs.d", "/etc/docker/certs.d"):
        if os.path.isdir(os.path.join(base, registry)):
            ca_dir = os.path.join(base, registry)
            break
    from layers.registry import is_insecure
    insecure = (not opts.tls_verify) or is_insecure(registry, ctx.config.insecure, settings.get("insecure"))
    return {"registry": registry, "creds": creds, "insecure": insecure, "ca_dir": ca_dir}


def _pull_endpoints(ctx: Context, registry: str, opts: RegistryOptions) -> list[dict]:
    """Where a pull from ``registry`` may come from: its mirrors (in order), then itself."""
    out = []
    for mirror in ctx.config.registries.get(registry, {}).get("mirrors", []):
        kw = _registry_kw(ctx, mirror, opts)
        kw["creds"] = kw["creds"] if opts.creds else None  # a mirror has its own credentials (or none)
        out.append(kw)
    try:
        out.append(_registry_kw(ctx, registry, opts))
    except RootlessError:
        if not out:
            raise  # blocked, and no mirror to use instead
    return out


def _say(ctx: Context, opts: RegistryOptions):
    """The progress display the CLI gave the Context (None: nothing is shown)."""
    return ctx.progress(opts.quiet) if ctx.progress else None


def pull_all_tags(ctx: Context, name: str, opts: RegistryOptions = RegistryOptions()) -> list[str]:
    """``pull --all-tags``: every tag of the repository (of the first registry of the search list
    that has it, for a short name)."""
    from layers import pull as pullmod
    from layers import reference
    if "@" in name or name.rsplit("/", 1)[-1].count(":"):
        raise RootlessError("--all-tags takes a repository name without a tag or digest")

    def tags_of(ref):
        tags = pullmod.list_tags(ref, _pull_endpoints(ctx, ref.registry, opts))
        if not tags:
            raise RootlessError(f"{ref.repository} has no tags")
        return ref, tags
    ref, tags = _first_registry(ctx, reference.candidates(name, ctx.store.search), tags_of, opts, name)
    return [pull(ctx, f"{ref.repository}:{t}", opts) for t in sorted(tags)]


def pull(ctx: Context, ref_text: str, opts: RegistryOptions = RegistryOptions()) -> str:
    """``pull``: the reference pulled (Docker prints it on stdout). A short name is tried at each
    registry of the search list in turn (``registries.search``, default docker.io alone)."""
    from layers import manifest, reference
    from layers import pull as pullmod
    platform = manifest.parse_platform(opts.platform) if opts.platform else None

    def one(ref):
        pulled = pullmod.pull(ctx.store, str(ref), _pull_endpoints(ctx, ref.registry, opts), platform,
                              say=_say(ctx, opts))
        got = pulled.reference
        image_event(ctx, "pull", got.familiar_repository + (f":{got.tag}" if got.tag else f"@{pulled.digest}"),
                    got.familiar_repository)
        return str(got) if ref.tag else f"{got.repository}@{pulled.digest}"
    return _first_registry(ctx, reference.candidates(ref_text, ctx.store.search), one, opts, ref_text)


def share_store(ctx: Context) -> None:
    """``pull --store``: the store made readable by others, as an additional store of theirs
    (``storage.additional_stores``) needs: its directories 0755, its index and blobs readable.
    The layers' trees keep the modes of the image (they are its files)."""
    import stat
    p = ctx.paths
    try:
        for d in (p.root, os.path.dirname(p.blobs), p.blobs, p.layers):
            os.chmod(d, 0o755)
        for d in (p.root, p.blobs):
            with os.scandir(d) as it:
                for e in it:
                    if e.is_file(follow_symlinks=False) and not e.name.startswith("."):
                        mode = stat.S_IMODE(e.stat(follow_symlinks=False).st_mode)
                        if mode & 0o044 != 0o044:
                            os.chmod(e.path, mode | 0o044)
    except OSError as e:  # pulled all the same: said, not fatal
        ctx.warn(f"the store {p.root} could not be made readable by others ({e.filename}: {e.strerror}): "
                 "other users cannot use it as an additional store")


def distribution(ctx: Context, ref_text: str, opts: RegistryOptions = RegistryOptions()) -> dict:
    """The registry's descriptor and platforms of ``ref_text`` (the API's ``/distribution``),
    nothing pulled: the first registry of the search list that has it, for a short name."""
    from layers import pull as pullmod
    from layers import reference
    return _first_registry(ctx, reference.candidates(ref_text, ctx.store.search),
                           lambda ref: pullmod.distribution(ref, _pull_endpoints(ctx, ref.registry, opts)),
                           opts._replace(quiet=True), ref_text)


def _first_registry(ctx: Context, refs: list, fn, opts: RegistryOptions, name: str):
    """``fn(ref)`` for the first of ``refs`` whose registry answers it; with several, a registry
    that refuses, fails or is blocked passes the name on to the next, and the error names them all."""
    from layers.registry import RegistryError
    if len(refs) == 1:
        return fn(refs[0])
    errors = []
    for ref in refs:
        if not opts.quiet:
            ctx.note(f"Trying to pull {ref}...")
        try:
            return fn(ref)
        except RegistryError as e:  # also a blocked registry
            errors.append(str(e))
    raise RegistryError(f"{name}: not found in any registry of the search list ({len(refs)} tried): "
                        + "; ".join(errors), "check the name, or registries.search in the configuration")


def ensure_image(ctx: Context, name: str, policy: str = "missing", opts: RegistryOptions = RegistryOptions()) -> dict:
    """The image for ``run``/``create``: pulled when missing (``--pull missing``), always, or never."""
    from rootless.base.errors import ImageNotFound
    if policy not in ("missing", "always", "never"):
        raise RootlessError(f"invalid --pull policy {policy!r}", "use missing, always or never")
    if policy != "always":
        try:
            rec = ctx.store.resolve(name)
            if not opts.platform or _platform_fits(ctx, rec, opts.platform):
                return rec
            if policy == "never":
                raise ImageNotFound(f"image with reference {name} was found but does not match the specified "
                                    f"platform: wanted {opts.platform}, actual: "
                                    f"{ctx.store.platform_of(rec) or 'unknown'}",  # Docker's words
                                    "pull it with --platform, or use --pull missing")
        except ImageNotFound:
            if policy == "never":
                raise
            if not opts.quiet:
                ctx.note(f"Unable to find image '{_familiar(name)}' locally")
    pull(ctx, name, opts)
    return ctx.store.resolve(name)


def _familiar(name: str) -> str:
    """``alpine`` -> ``alpine:latest``: a name as Docker's messages show it (an unreadable one as given)."""
    from layers import reference
    try:
        return reference.parse(name).familiar
    except RootlessError:
        return name


def _platform_fits(ctx: Context, rec: dict, wanted: str) -> bool:
    from layers import manifest
    want = manifest.parse_platform(wanted)  # a bad --platform is the user's error
    try:
        return manifest.platform_matches(manifest.parse_platform(ctx.store.platform_of(rec)), want)
    except RootlessError:  # an image whose config names no usable platform
        return False


def push_all_tags(ctx: Context, name: str, opts: RegistryOptions = RegistryOptions()) -> list[str]:
    """``push --all-tags``: every local tag of the repository ``name``."""
    from layers import reference
    ref = reference.parse(name)
    if ref.digest or name.rsplit("/", 1)[-1].count(":"):
        raise RootlessError("--all-tags takes a repository name without a tag")
    tags = sorted(t for rec in ctx.store.images() for t in rec.get("repo_tags", [])
                  if reference.parse(t).repository == ref.repository)
    if not tags:
        raise RootlessError(f"no local tags of {ref.repository} to push")
    return [push(ctx, t, None, opts) for t in tags]


def push(ctx: Context, image: str, dest: str | None, opts: RegistryOptions = RegistryOptions()) -> str:
    from layers import push as pushmod
    from layers import reference
    ref = reference.parse(dest or image)
    kw = _registry_kw(ctx, ref.registry, opts)
    del kw["registry"]
    return pushmod.push(ctx.store, image, dest, say=_say(ctx, opts), **kw).digest


def tag(ctx: Context, image: str, target: str) -> None:
    from layers import reference
    rec = ctx.store.resolve(image)
    ref = reference.parse(target)
    if ref.digest:
        raise RootlessError(f"cannot tag with a digest: {target}")
    ctx.store.add_tag(rec["id"], str(ref))
    image_event(ctx, "tag", rec["id"], f"{ref.familiar_repository}:{ref.tag or 'latest'}")


def image_event(ctx: Context, action: str, actor_id: str, name: str) -> None:
    """An image event as Docker's: ``pull`` names the reference, ``tag``/``untag``/``delete`` the
    image id; ``name`` is the tag (the repository for ``pull``, the id for ``delete``)."""
    from rootless.runtime import events
    events.append(ctx.paths, "image", action, actor_id, {"name": name})


def login(ctx: Context, registry: str, user: str, password: str, opts: RegistryOptions = RegistryOptions()) -> str:
    """Check the credentials against the registry (GET /v2/ authenticated), then store them."""
    from layers import auth
    from layers.registry import Client
    kw = _registry_kw(ctx, registry, opts)
    client = Client(registry, "", (user, password), insecure=kw["insecure"], ca_dir=kw["ca_dir"],
                    ref_text=registry)
    client.scope = ""
    try:
        client.request("GET", "/v2/", what="login")
    finally:
        client.close()
    return auth.store(registry, user, password)


def logout(ctx: Context, registry: str) -> bool:
    from layers import auth
    return auth.remove(registry)


# ---- what containers need of an image (rootless/engine/containers.py) ----------------------
def layer_refs(image: dict):
    from layers.store import LayerRef
    return [LayerRef(lr["diff_id"], lr["blob"], lr["media_type"], lr.get("size", 0)) for lr in image["layers"]]


def familiar_name(image: dict) -> str:
    """How Docker shows an image: its first tag (``busybox:latest``), else its short id."""
    from layers import reference
    tags = image.get("repo_tags") or []
    if not tags:
        return image["id"][7:19]
    ref = reference.parse(tags[0])
    return f"{ref.familiar_repository}:{ref.tag}"
