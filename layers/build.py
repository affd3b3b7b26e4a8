"""``build``: a Dockerfile's stages executed in order, each step cached.

The builder owns the Dockerfile's semantics: which stages the target needs,
ARG scoping, variable substitution, what each instruction does to the image
config, the cache key of each step and the image it ends with. What touches
the machine (pulling a base image, running a ``RUN`` step in a container,
copying files into a root filesystem, fetching a URL, storing the result) is
the :class:`Executor`'s, injected by the engine, so ``layers`` never imports
the runtime. Imports ``rootless.base`` and ``layers`` only.
"""

from __future__ import annotations

import json
import os
from typing import Protocol

from layers import buildcache, dockerfile, shellwords
from layers.dockerfile import DockerfileError
from rootless.base.errors import RootlessError
from rootless.base.valuetype import KeywordRecord, keyword_record

TYPE_CHECKING = False  # annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

    from layers.buildctx import BuildContext

DEFAULT_SHELL = ("/bin/sh", "-c")
# a stage's PATH when its base image sets none (an imported image, scratch), as Docker's builders
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_ARGS = frozenset(("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                        "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"))

@keyword_record
class BuildOptions(KeywordRecord):
    """What a build is asked besides its Dockerfile and context."""
    build_args: dict[str, str] = {}  # noqa: RUF012 - never changed: the builder reads it
    target: str | None = None  # the stage to build (None: the last)
    no_cache: bool = False
    pull: str = "missing"  # missing | always: the base images
    labels: dict[str, str] = {}  # noqa: RUF012 - the same
    network: str = "slirp4netns"  # the RUN steps'
    platform: str | None = None
    # --cache-from: the images whose steps may serve as cache, {"history", "layers"} each; None:
    # not given, the local cache serves (Docker's classic builder then uses the local cache no more)
    cache_sources: tuple[dict, ...] | None = None
    every_step: bool = False  # say the cache and the id of every step, as Docker's classic builder


class BuildError(RootlessError):
    """A step failed; ``exit_code`` is the failed RUN's, as ``docker build`` reports it (1)."""


class Stage:
    """A stage while it is built: the image so far and the scope of its instructions."""

    def __init__(self, spec: dockerfile.Stage, image: dict, chain: str, args: dict[str, str]):
        self.spec = spec
        self.image = image  # the image config (architecture, os, config, rootfs, history)
        self.layers: list[dict] = list(image.pop("_layers", []))  # LayerRef JSON, bottom first
        self.chain = chain
        self.args = dict(args)  # ARGs in scope: name -> value
        self.cmd_set = False
        self.base_id = chain
        self.root = chain  # the image (or scratch) the stage's first ancestor starts from
        self.n_base = len(self.layers)  # how many of the layers are that image's

    @property
    def config(self) -> dict:
        return self.image.setdefault("config", {})

    def env(self) -> dict[str, str]:
        return dict(e.partition("=")[::2] for e in self.config.get("Env") or [])

    def scope(self) -> dict[str, str]:
        """What ``$VAR`` means in an instruction: the ARGs, then ENV over them."""
        return {**self.args, **self.env()}

    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    def workdir(self) -> str:
        return self.config.get("WorkingDir") or "/"

    def diff_ids(self) -> list[str]:
        return [lr["diff_id"] for lr in self.layers]


class Executor(Protocol):
    """What the builder asks of the machine: the engine's ``rootless.engine.build.Executor``
    implements it (a test checks that it matches), the unit tests' fake derives from it."""

    def say(self, text: str) -> None:
        """Show a line of the build's progress."""

    def base(self, name: str, platform: str | None, pull: str) -> tuple[str, dict, list[dict]]:
        """(image id, image config, layers) of a base image: local, else pulled."""
        raise NotImplementedError

    def run(self, stage: Stage, step: dict) -> dict:
        """Run a RUN step on the stage's root filesystem; the layer it made (LayerRef JSON)."""
        raise NotImplementedError

    def files(self, stage: Stage, ops: list[dict]) -> dict | None:
        """Apply file operations (copy, extract, mkdir) to the stage's root filesystem; the layer
        (None when nothing changed and ``ops`` allow it)."""
        raise NotImplementedError

    def fetch(self, url: str, checksum: str | None) -> tuple[str, str, str | None]:
        """(local path, sha256 digest, Last-Modified) of a downloaded ``ADD`` URL."""
        raise NotImplementedError

    def now(self) -> str:
        """The time of a step's history entry (RFC 3339, UTC)."""
        raise NotImplementedError

    def stages(self, jobs: list[tuple[int, set[int]]], work: Callable[[int], dict],
               done: Callable[[int, dict], None]) -> None:
        """Build the stages ``jobs`` ((index, the indexes it reads from), in the Dockerfile's order):
        ``done(index, work(index))`` for each, once its own are done. This default builds them one
        after the other; the engine's builds independent ones at once."""
        for index, _reads in jobs:
            done(index, work(index))

    def selection_digest(self, layers: list[dict], paths: list[str]) -> str:
        """The content digest of what ``paths`` (globs too) name in the root of ``layers``: names,
        modes, owners, link targets and contents, not times. This default, for an executor that
        cannot look inside layers, keys on the layers' ids."""
        return buildcache.key("layers", [[lr["diff_id"] for lr in layers], paths])

    def layer_digest(self, layer: dict) -> str:
        """The content digest of a layer (its times do not count); this default: its diff id."""
        return layer["diff_id"]


class Builder:
    def __init__(self, df: dockerfile.Dockerfile, ctx: BuildContext, opts: BuildOptions, ex: Executor,
                 store: buildcache.LayerStore,
                 cache_root: str, host_platform: tuple[str, str, str]):
        self.df = df
        self.ctx = ctx
        self.opts = opts
        self.ex = ex
        self.store = store
        self.cache_root = cache_root
        self.host = host_platform  # os, architecture, variant
        self.used_args: set[str] = set()
        self.done: dict[int, Stage] = {}
        self.step_no = 0
        self.total = 0
        self.meta = self._meta_args()

    # ---- the whole build ------------------------------------------------------------------
    def build(self) -> tuple[dict, list[dict]]:
        """(image config, layers) of the target stage. The stages it needs are built as a graph:
        each once those it reads from are done, independent ones at once when the executor can
        (:meth:`Executor.stages`)."""
        target = self._target()
        needed = self._needed(target)
        order = [s for s in self.df.stages if s.index in needed]
        self.total = sum(1 + len(s.instructions) for s in order)
        first_step, n = {}, 0
        for s in order:  # each stage's steps keep the numbers a build in order gives them
            first_step[s.index] = n
            n += 1 + len(s.instructions)

        def work(index: int) -> dict:
            self.step_no = first_step[index]
            st = self._stage(self.df.stages[index])
            return {"stage": st, "used_args": self.used_args}

        def done(index: int, result: dict) -> None:
            self.done[index] = result["stage"]
            self.used_args |= result["used_args"]
        self.ex.stages([(s.index, self._reads(s) & needed) for s in order], work, done)
        st = self.done[target.index]
        unused = sorted(k for k in self.opts.build_args if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            self.ex.say(f"[Warning] one or more build-args {unused} were not consumed")
        image = json.loads(json.dumps(st.image))
        if self.opts.labels:
            image["config"]["Labels"] = {**(image["config"].get("Labels") or {}), **self.opts.labels}
        image["rootfs"] = {"type": "layers", "diff_ids": st.diff_ids()}
        history = image.get("history") or []
        image["created"] = history[-1]["created"] if history else self.ex.now()
        return image, st.layers

    def _target(self) -> dockerfile.Stage:
        if self.opts.target is None:
            return self.df.stages[-1]
        for s in self.df.stages:
            if s.name == self.opts.target.lower():
                return s
        raise DockerfileError(f"target stage {self.opts.target!r} could not be found",
                              "name a stage of the Dockerfile (FROM ... AS NAME)")

    def _needed(self, target: dockerfile.Stage) -> set[int]:
        """The target and the stages it reads from (FROM, COPY --from, RUN --mount from=)."""
        needed: set[int] = set()
        todo = [target]
        while todo:
            s = todo.pop()
            if s.index in needed:
                continue
            needed.add(s.index)
            todo += [self.df.stages[i] for i in self._reads(s, unknown=set())]
        return needed

    def _reads(self, s: dockerfile.Stage, unknown: set[int] | None = None) -> set[int]:
        """The earlier stages ``s`` reads from (FROM, COPY --from, RUN --mount from=); a reference
        with a variable counts as ``unknown`` (None: any earlier stage)."""
        refs = [self._expand_meta(s.base, s)]
        for ins in s.instructions:
            if ins.cmd == "COPY" and "from" in ins.flags:
                refs.append(ins.flags["from"])
            if ins.cmd == "RUN":
                for m in _as_tuple(ins.flags.get("mount")):
                    refs.append(_mount_options(m).get("from", ""))
        out = set()
        for ref in refs:
            if "$" in ref:
                out |= set(range(s.index)) if unknown is None else unknown
                continue
            other = self._stage_ref(ref, s.index)
            if other is not None:
                out.add(other.index)
        return out

    def _stage_ref(self, ref: str, before: int) -> dockerfile.Stage | None:
        """The earlier stage ``ref`` names (its name or index), or None for an image."""
        if not ref:
            return None
        for s in self.df.stages[:before]:
            if s.name == ref.lower():
                return s
        if ref.isdigit():
            n = int(ref)
            if n >= before:
                raise DockerfileError(f"stage {ref} is not an earlier stage of the Dockerfile",
                                      "--from names a stage defined above it")
            return self.df.stages[n]
        return None

    # ---- ARGs ---------------------------------------------------------------------------
    def _platform_args(self) -> dict[str, str]:
        os_, arch, variant = self.host
        plat = f"{os_}/{arch}" + (f"/{variant}" if variant else "")
        out = {}
        for pre in ("BUILD", "TARGET"):
            out.update({f"{pre}PLATFORM": plat, f"{pre}OS": os_, f"{pre}ARCH": arch, f"{pre}VARIANT": variant})
        if self.opts.platform:
            t_os, _, rest = self.opts.platform.partition("/")
            t_arch, _, t_var = rest.partition("/")
            out.update(TARGETPLATFORM=self.opts.platform, TARGETOS=t_os, TARGETARCH=t_arch, TARGETVARIANT=t_var)
        return out

    def _meta_args(self) -> dict[str, str]:
        scope = self._platform_args()
        for ins in self.df.meta_args:
            for name, default in self._arg_words(ins, scope):
                value = self.opts.build_args.get(name, default)
                if name in self.opts.build_args:
                    self.used_args.add(name)
                if value is not None:
                    scope[name] = value
                else:
                    scope.pop(name, None)
        return scope

    def _arg_words(self, ins: dockerfile.Instruction, scope: dict) -> list[tuple[str, str | None]]:
        out = []
        for word in ins.args:
            name, eq, default = word.partition("=")
            if not name or not all(c.isalnum() or c == "_" for c in name):
                raise DockerfileError(f"{ins.where(self.df.path)}: invalid ARG name {name!r}")
            out.append((name, self._word(default, scope, ins) if eq else None))
        return out

    def _expand_meta(self, word: str, spec: dockerfile.Stage) -> str:
        try:
            return shellwords.expand_word(word, self.meta, self.df.escape)
        except RootlessError as e:
            raise DockerfileError(f"{self.df.path}:{spec.line}: {e.message}") from None

    # ---- substitution ---------------------------------------------------------------------
    def _word(self, word: str, scope: dict, ins: dockerfile.Instruction) -> str:
        try:
            return shellwords.expand_word(word, scope, self.df.escape)
        except RootlessError as e:
            raise DockerfileError(f"{ins.where(self.df.path)}: {e.message}") from None

    def _words(self, st: Stage, ins: dockerfile.Instruction) -> list[str]:
        scope = st.scope()
        return [self._word(w, scope, ins) for w in ins.args]

    # ---- one stage --------------------------------------------------------------------------
    def _stage(self, spec: dockerfile.Stage) -> Stage:
        self._say_step(f"FROM {spec.base}" + (f" AS {spec.name}" if spec.name else ""))
        st = self._from(spec)
        triggers = (st.config.get("OnBuild") or [])
        st.config["OnBuild"] = None
        for text in triggers:
            ins = dockerfile.parse_trigger(text, self.df.path, spec.line)
            self.ex.say(f"--> running ONBUILD trigger: {text}")
            self._instruction(st, ins)
        for ins in spec.instructions:
            self._say_step(_first_line(ins.original))
            self._instruction(st, ins)
        return st

    def _say_step(self, text: str) -> None:
        self.step_no += 1
        self.ex.say(f"STEP {self.step_no}/{self.total}: {text}")

    def _from(self, spec: dockerfile.Stage) -> Stage:
        st = self._base(spec)
        env = st.config.get("Env") or []
        if not any(e.partition("=")[0] == "PATH" for e in env):  # Docker's builders begin with the default
            st.config["Env"] = [*env, f"PATH={DEFAULT_PATH}"]
        return st

    def _base(self, spec: dockerfile.Stage) -> Stage:
        name = self._expand_meta(spec.base, spec)
        platform = self._expand_meta(spec.platform, spec) if spec.platform else self.opts.platform
        if not name:
            raise DockerfileError(f"{self.df.path}:{spec.line}: FROM names no image (an empty ARG?)")
        other = self._stage_ref(name, spec.index) if not name.isdigit() else None
        if other is not None:
            src = self.done[other.index]
            image = json.loads(json.dumps(src.image))
            image["_layers"] = list(src.layers)
            st = Stage(spec, image, self._content_key(src), {})
            st.root, st.n_base = src.root, src.n_base
            return st
        if name == "scratch":
            os_, arch, variant = self.host
            image = {"architecture": arch, "os": os_, "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
                     "history": []}
            if variant:
                image["variant"] = variant
            return Stage(spec, image, buildcache.key("scratch", []), {})
        image_id, config, layers = self.ex.base(name, platform, self.opts.pull)
        image = {k: v for k, v in config.items() if k in ("architecture", "os", "variant", "config", "history",
                                                             "author", "os.version", "os.features")}
        image.setdefault("config", {})
        image.setdefault("history", [])
        image["_layers"] = layers
        return Stage(spec, image, image_id, {})

    def _content_key(self, src: Stage) -> str:
        """What a stage that starts ``FROM`` the stage ``src`` is keyed on: its content (the image it
        starts from, the content digests of the layers its steps made, its config), not the steps
        that made it, so that a stage rebuilt into the same files keeps the later steps cached."""
        made = [self.ex.layer_digest(lr) for lr in src.layers[src.n_base:]]
        image = {k: v for k, v in src.image.items() if k != "history"}
        return buildcache.key("stage", [src.root, made, image])

    def _instruction(self, st: Stage, ins: dockerfile.Instruction) -> None:
        handler = getattr(self, "_do_" + ins.cmd.lower())
        handler(st, ins)

    def _step(self, st: Stage, ins: dockerfile.Instruction, parts: object,
              work: Callable[[], dict | None] | None = None, created_by: str | None = None,
              derivable: bool = True) -> None:
        """Look the step up in the cache, else do ``work`` (a layer or None) and cache it.
        ``derivable``: the history line says all the step depends on, so that a ``--cache-from``
        image's step with that line may serve without a local cache entry (not COPY/ADD, whose
        line does not name the contents)."""
        k = buildcache.key(st.chain, [ins.cmd, parts])
        created_by = created_by or _first_line(ins.original)
        entry = None if self.opts.no_cache else buildcache.get(self.cache_root, k, self.store)
        if not self.opts.no_cache and self.opts.cache_sources is not None:
            entry = self._from_sources(st, entry, created_by, derivable)
        say = work is not None or self.opts.every_step
        if entry is not None:
            if say:
                self.ex.say(f"--> Using cache {k[7:19]}")
        else:
            layer = work() if work is not None else None
            history: dict[str, object] = {"created": self.ex.now(), "created_by": created_by}
            if layer is None:
                history["empty_layer"] = True
            entry = buildcache.put(self.cache_root, k, layer, history)
            if say:
                self.ex.say(f"--> {k[7:19]}")
        if entry["layer"]:
            st.layers.append(entry["layer"])
        st.image.setdefault("history", []).append(entry["history"])
        st.chain = k

    def _from_sources(self, st: Stage, entry: dict | None, created_by: str, derivable: bool) -> dict | None:
        """With ``--cache-from``, a step comes from the cache only as one of those images made it
        (Docker's classic builder): the stage so far is the start of its history and layers, and
        its next history line is this step's. The local entry serves when it made the same
        layer; without one, the image's own step does when ``derivable``."""
        hist = st.image.get("history") or []
        ids = st.diff_ids()
        for src in self.opts.cache_sources or ():
            s_hist, s_layers = src["history"], src["layers"]
            if len(s_hist) <= len(hist) or [lr["diff_id"] for lr in s_layers[:len(ids)]] != ids:
                continue
            if any(_line(a) != _line(b) for a, b in zip(s_hist, hist, strict=False)):
                continue
            line = s_hist[len(hist)]
            if line.get("created_by") != created_by:
                continue
            layer = None
            if not line.get("empty_layer"):
                if len(s_layers) <= len(ids):
                    continue
                layer = dict(s_layers[len(ids)])
            if entry is not None:
                if (entry["layer"] or {}).get("diff_id") == (layer or {}).get("diff_id"):
                    return entry
            elif derivable:
                return {"version": buildcache.ENTRY_VERSION, "layer": layer, "history": dict(line)}
        return None

    # ---- metadata instructions ----------------------------------------------------------------
    def _do_arg(self, st: Stage, ins: dockerfile.Instruction) -> None:
        for name, default in self._arg_words(ins, st.scope()):
            value: str | None
            if name in self.opts.build_args:
                value = self.opts.build_args[name]
                self.used_args.add(name)
            elif default is not None:
                value = default
            else:
                value = self.meta.get(name)
            if value is not None:
                st.args[name] = value
            else:
                st.args.pop(name, None)
        # Not the values: a changed value misses where it is used (RUN's key has the ARGs in
        # scope; other instructions' keys have their expanded words), not here (Docker's rule).
        self._step(st, ins, list(ins.args))

    def _do_env(self, st: Stage, ins: dockerfile.Instruction) -> None:
        scope = st.scope()  # every pair sees the values from before the instruction (Docker's rule)
        updates = [(self._word(k, scope, ins), self._word(v, scope, ins)) for k, v in _pairs(ins, self.df.path)]
        env = list(st.config.get("Env") or [])
        for k, v in updates:
            at = next((i for i, e in enumerate(env) if e.partition("=")[0] == k), None)
            if at is None:
                env.append(f"{k}={v}")
            else:
                env[at] = f"{k}={v}"  # an override keeps its place
        st.config["Env"] = env
        self._step(st, ins, updates, created_by=f"ENV {' '.join(f'{k}={v}' for k, v in updates)}")

    def _do_label(self, st: Stage, ins: dockerfile.Instruction) -> None:
        scope = st.scope()
        labels = dict(st.config.get("Labels") or {})
        pairs = [(self._word(k, scope, ins), self._word(v, scope, ins)) for k, v in _pairs(ins, self.df.path)]
        labels.update(pairs)
        st.config["Labels"] = labels
        self._step(st, ins, pairs, created_by=f"LABEL {' '.join(f'{k}={v}' for k, v in pairs)}")

    def _do_maintainer(self, st: Stage, ins: dockerfile.Instruction) -> None:
        st.image["author"] = " ".join(ins.args)
        self._step(st, ins, st.image["author"])

    def _do_expose(self, st: Stage, ins: dockerfile.Instruction) -> None:
        ports = dict(st.config.get("ExposedPorts") or {})
        for word in self._words(st, ins):
            for p in _ports(word, ins.where(self.df.path)):
                ports[p] = {}
        st.config["ExposedPorts"] = ports
        self._step(st, ins, sorted(ports))

    def _do_volume(self, st: Stage, ins: dockerfile.Instruction) -> None:
        vols = dict(st.config.get("Volumes") or {})
        for word in self._words(st, ins):
            if not word.strip():
                raise DockerfileError(f"{ins.where(self.df.path)}: VOLUME specified can not be an empty string")
            vols[word] = {}
        st.config["Volumes"] = vols
        self._step(st, ins, sorted(vols))

    def _do_user(self, st: Stage, ins: dockerfile.Instruction) -> None:
        st.config["User"] = self._words(st, ins)[0]
        self._step(st, ins, st.config["User"])

    def _do_workdir(self, st: Stage, ins: dockerfile.Instruction) -> None:
        path = self._words(st, ins)[0]
        path = os.path.normpath(os.path.join(st.workdir(), path))
        path = "/" + path.lstrip("/")
        st.config["WorkingDir"] = path
        self._step(st, ins, path, work=lambda: self.ex.files(st, [{"op": "mkdir", "dest": path}]),
                   created_by=f"WORKDIR {path}")

    def _do_cmd(self, st: Stage, ins: dockerfile.Instruction) -> None:
        st.config["Cmd"] = self._command(st, ins)
        st.cmd_set = True
        self._step(st, ins, st.config["Cmd"])

    def _do_entrypoint(self, st: Stage, ins: dockerfile.Instruction) -> None:
        st.config["Entrypoint"] = self._command(st, ins) or None
        if not st.cmd_set:
            st.config["Cmd"] = None  # Docker: a new ENTRYPOINT drops the base image's CMD
        self._step(st, ins, [st.config["Entrypoint"], st.config.get("Cmd")])

    def _command(self, st: Stage, ins: dockerfile.Instruction) -> list[str]:
        if ins.json:
            return list(ins.args)
        text = " ".join(ins.args)
        return st.shell() + [text] if text else []

    def _do_shell(self, st: Stage, ins: dockerfile.Instruction) -> None:
        st.config["Shell"] = list(ins.args)
        self._step(st, ins, st.config["Shell"])

    def _do_stopsignal(self, st: Stage, ins: dockerfile.Instruction) -> None:
        sig = self._words(st, ins)[0]
        _check_signal(sig, ins.where(self.df.path))
        st.config["StopSignal"] = sig
        self._step(st, ins, sig)

    def _do_healthcheck(self, st: Stage, ins: dockerfile.Instruction) -> None:
        kind = ins.args[0].upper()
        if kind == "NONE":
            if len(ins.args) > 1:
                raise DockerfileError(f"{ins.where(self.df.path)}: HEALTHCHECK NONE takes no other arguments")
            hc: dict = {"Test": ["NONE"]}
        else:
            rest = list(ins.args[1:])
            if not rest:
                raise DockerfileError(f"{ins.where(self.df.path)}: HEALTHCHECK CMD requires a command")
            hc = {"Test": ["CMD", *rest] if ins.json else ["CMD-SHELL", " ".join(rest)]}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                if flag in ins.flags:
                    hc[key] = _healthcheck_duration(ins.flags[flag], ins.where(self.df.path), flag)
            if "retries" in ins.flags:
                try:
                    hc["Retries"] = int(ins.flags["retries"])
                except ValueError:
                    hc["Retries"] = -1
                if hc["Retries"] < 1:
                    raise DockerfileError(f"{ins.where(self.df.path)}: --retries must be at least 1")
        st.config["Healthcheck"] = hc
        self._step(st, ins, hc)

    def _do_onbuild(self, st: Stage, ins: dockerfile.Instruction) -> None:
        trigger = ins.original.split(None, 1)[1].strip()
        st.config["OnBuild"] = [*(st.config.get("OnBuild") or []), trigger]
        self._step(st, ins, trigger)

    # ---- RUN ------------------------------------------------------------------------------------
    def _do_run(self, st: Stage, ins: dockerfile.Instruction) -> None:
        argv, scripts = self._run_argv(st, ins)
        declared = dict(st.args)
        env = dict(declared)
        for k in PROXY_ARGS & set(self.opts.build_args):  # usable without an ARG, and not in the key
            env.setdefault(k, self.opts.build_args[k])
            self.used_args.add(k)
        env.update(st.env())
        mounts = [self._run_mount(st, ins, m) for m in _as_tuple(ins.flags.get("mount"))]
        mounts += [{"type": "script", "target": f"/dev/pipes/{name}", "content": body} for name, body in scripts]
        network = ins.flags.get("network") or self.opts.network
        if network not in ("none", "host", "default", "slirp4netns"):
            raise DockerfileError(f"{ins.where(self.df.path)}: RUN --network={network}: use none, host or default")
        network = "slirp4netns" if network == "default" else network
        step = {"argv": argv, "env": [f"{k}={v}" for k, v in env.items()], "user": st.config.get("User") or "",
                "workdir": st.workdir(), "network": network, "mounts": mounts, "where": ins.where(self.df.path),
                "text": _first_line(ins.original)}
        shown = " ".join(argv) if ins.json or scripts else argv[-1]
        prefix = (f"|{len(declared)} " + " ".join(f"{k}={v}" for k, v in sorted(declared.items())) + " "
                  if declared else "")
        created_by = prefix + (" ".join(st.shell()) + " " + shown if not (ins.json or scripts) else shown)
        key_mounts = [{k: v for k, v in m.items() if k != "source"} | {"digest": m.get("digest")} for m in mounts]
        self._step(st, ins, [argv, sorted(declared.items()), step["user"], step["workdir"], key_mounts],
                   work=lambda: self.ex.run(st, step), created_by=created_by, derivable=not mounts)

    def _run_argv(self, st: Stage, ins: dockerfile.Instruction) -> tuple[list[str], list[tuple[str, str]]]:
        """The command of a RUN, and the heredoc scripts it executes as files ((name, content))."""
        if ins.json:
            return list(ins.args), []
        text = " ".join(ins.args)  # the shell form: one string, the flags taken off
        if not ins.heredocs:
            return st.shell() + [text], []
        import re
        only = re.fullmatch(r"<<-?(['\"]?)(\w+)\1", text.strip())
        if only and len(ins.heredocs) == 1:  # RUN <<EOF: the heredoc is the script
            name, body = ins.heredocs[0]
            if text.strip().startswith("<<-"):
                body = _strip_tabs(body)
            if body.startswith("#!"):  # its own interpreter: run as a file, where BuildKit puts it
                return [f"/dev/pipes/{name}"], [(name, body)]
            return st.shell() + [body], []
        bodies = ins.original.split("\n", 1)[1] if "\n" in ins.original else ""
        return st.shell() + [text + "\n" + bodies.rstrip("\n")], []  # the shell reads its own heredocs

    def _run_mount(self, st: Stage, ins: dockerfile.Instruction, text: str) -> dict:
        opts = _mount_options(text)
        kind = opts.get("type", "bind")
        target = opts.get("target") or opts.get("dst") or opts.get("destination")
        where = ins.where(self.df.path)
        if not target:
            raise DockerfileError(f"{where}: --mount={text}: the target is missing")
        target = os.path.normpath(os.path.join(st.workdir(), target))
        if kind == "cache":
            ident = opts.get("id") or target
            return {"type": "cache", "id": ident, "target": target, "rw": opts.get("readonly", "false") in ("false",),
                    "uid": int(opts.get("uid", 0)), "gid": int(opts.get("gid", 0)),
                    "mode": int(opts.get("mode", "755"), 8)}
        if kind == "tmpfs":
            return {"type": "tmpfs", "target": target, "rw": True}
        if kind == "bind":
            if opts.get("from"):
                raise DockerfileError(f"{where}: RUN --mount=type=bind,from=... is not supported",
                                      "COPY --from the stage first, or bind from the build context")
            srcs = self.ctx.sources(opts.get("source") or opts.get("src") or ".", f"{where}: RUN --mount")
            from layers import buildctx
            return {"type": "bind", "source": srcs[0].path, "target": target,
                    "rw": opts.get("rw", opts.get("readwrite", "false")) not in ("false",),
                    "digest": buildctx.digest(srcs)}
        raise DockerfileError(f"{where}: RUN --mount=type={kind} is not supported", "use type=cache, bind or tmpfs")

    # ---- COPY / ADD -----------------------------------------------------------------------------
    def _do_copy(self, st: Stage, ins: dockerfile.Instruction) -> None:
        self._files(st, ins, add=False)

    def _do_add(self, st: Stage, ins: dockerfile.Instruction) -> None:
        self._files(st, ins, add=True)

    def _files(self, st: Stage, ins: dockerfile.Instruction, add: bool) -> None:
        where = ins.where(self.df.path)
        what = f"{where}: {ins.cmd}"
        for flag in ("parents", "exclude", "keep-git-dir"):
            if flag in ins.flags:
                raise DockerfileError(f"{what} --{flag} is not supported")
        words = self._words(st, ins)
        *srcs, dest = words
        heredocs = dict(ins.heredocs)
        dest_dir = dest.endswith("/") or dest in ("", ".", "..") or dest.endswith(("/.", "/.."))
        dest = os.path.normpath(os.path.join(st.workdir(), dest)) if dest not in ("", ".") else st.workdir()
        chmod = None
        if "chmod" in ins.flags:
            try:
                chmod = int(self._word(ins.flags["chmod"], st.scope(), ins), 8)
            except ValueError:
                raise DockerfileError(f"{what}: invalid --chmod {ins.flags['chmod']!r}",
                                      "give octal bits, like 755") from None
        chown = self._word(ins.flags["chown"], st.scope(), ins) if "chown" in ins.flags else None
        common = {"dest": dest, "dest_dir": dest_dir, "chown": chown, "chmod": chmod}
        ops: list[dict] = []
        parts: list = [dest, dest_dir, chown, chmod]
        src_from = ins.flags.get("from")
        if src_from:
            src_from = self._word(src_from, st.scope(), ins)
            other = self._stage_ref(src_from, st.spec.index)
            if other is not None:  # keyed on what it copies, so a rebuilt stage that made the same files serves
                layers = self.done[other.index].layers
                chain = self.ex.selection_digest(layers, srcs)
            else:
                chain, _config, layers = self.ex.base(src_from, None, "missing")
            ops.append({"op": "copy_from", "layers": [lr["diff_id"] for lr in layers], "paths": srcs, **common})
            parts += [chain, srcs]
        else:
            from layers import buildctx
            sources = []
            for raw_word, s in zip(ins.args[:-1], srcs, strict=True):
                name = raw_word[2:].lstrip("-").strip("'\"") if raw_word.startswith("<<") else None
                if name is not None and name in heredocs:
                    content = heredocs[name]
                    if raw_word.startswith("<<-"):
                        content = _strip_tabs(content)
                    if not any(q in raw_word for q in "'\""):  # an unquoted delimiter: $VAR expands
                        esc = self.df.escape
                        raw = "".join(esc + ch if ch in ("'", '"', esc) else ch for ch in content)
                        content = self._word(raw, st.scope(), ins)
                    ops.append({"op": "inline", "name": name, "content": content, **common})
                    parts.append(["inline", name, content])
                elif add and s.startswith(("http://", "https://")):
                    checksum = self._word(ins.flags["checksum"], st.scope(), ins) if "checksum" in ins.flags else None
                    try:
                        path, sha, modified = self.ex.fetch(s, checksum)
                    except RootlessError as e:
                        raise BuildError(f"{what} {e.message}", e.hint, exit_code=1) from None
                    name = os.path.basename(s.split("?", 1)[0].rstrip("/")) or "index.html"
                    ops.append({"op": "url", "path": path, "name": name, "mtime": modified, **common})
                    parts.append(["url", s, sha])
                elif add and (s.startswith("git@") or s.endswith(".git")):
                    raise DockerfileError(f"{what}: git sources are not supported", "clone in a RUN step instead")
                else:
                    found = self.ctx.sources(s, what)
                    sources += found
                    for src in found:
                        kind = "extract" if add and not src.is_dir and _is_archive(src.path) else "copy"
                        ops.append({"op": kind, "path": src.path, "name": src.name, "is_dir": src.is_dir,
                                    "entries": list(src.entries), **common})
            if sources:
                parts.append(buildctx.digest(sources))
            if "checksum" in ins.flags and not any(o["op"] == "url" for o in ops):
                raise DockerfileError(f"{what}: --checksum works only with an http(s) source")
        if (len(ops) > 1 or len(srcs) > 1) and not dest_dir:  # several sources, named or matched by a glob
            raise DockerfileError(f"{what}: when using {ins.cmd} with more than one source file, "
                                  "the destination must be a directory and end with a /")
        self._step(st, ins, parts, work=lambda: self.ex.files(st, ops),
                   created_by=f"{ins.cmd} {' '.join(srcs)} {dest}", derivable=False)


# ---- helpers ---------------------------------------------------------------------------------
def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def _line(history: dict) -> tuple:
    """What of a history line tells one step from another (its time does not)."""
    return history.get("created_by"), bool(history.get("empty_layer"))


def _strip_tabs(text: str) -> str:
    """A ``<<-`` heredoc: its lines' leading tabs go."""
    return "".join(line.lstrip("\t") for line in text.splitlines(keepends=True))


def _as_tuple(v: object) -> tuple:
    if v is None:
        return ()
    return v if isinstance(v, tuple) else (v,)


def _mount_options(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        k, eq, v = part.partition("=")
        out[k.strip().lower()] = v.strip() if eq else "true"
    return out


def _pairs(ins: dockerfile.Instruction, path: str) -> list[tuple[str, str]]:
    args = list(ins.args)
    if len(args) % 2:
        raise DockerfileError(f"{ins.where(path)}: {ins.cmd} needs NAME=VALUE pairs")
    pairs = list(zip(args[::2], args[1::2], strict=True))
    for k, _ in pairs:
        if not k:
            raise DockerfileError(f"{ins.where(path)}: {ins.cmd} names can not be blank")
    return pairs


def _ports(word: str, where: str) -> list[str]:
    port, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise DockerfileError(f"{where}: invalid proto: {proto}")
    lo, dash, hi = port.partition("-")
    try:
        a, b = int(lo), int(hi) if dash else int(lo)
    except ValueError:
        raise DockerfileError(f"{where}: invalid containerPort: {port}") from None
    if not (0 < a <= b <= 65535):
        raise DockerfileError(f"{where}: invalid port range: {port}")
    return [f"{n}/{proto}" for n in range(a, b + 1)]


def _check_signal(sig: str, where: str) -> None:
    import signal
    if sig.isdigit():
        if 0 < int(sig) < 65:
            return
    else:
        name = sig.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if hasattr(signal, name) or name.startswith("SIGRTM"):
            return
    raise DockerfileError(f"{where}: invalid signal: {sig}")


def _healthcheck_duration(text: str, where: str, flag: str) -> int:
    """A HEALTHCHECK flag's Go duration (``30s``, ``1m30s``, ``.5s``) in nanoseconds, not negative."""
    from rootless.base.clock import parse_duration
    try:
        ns = parse_duration(text)
    except ValueError:
        ns = -1
    if ns < 0:
        raise DockerfileError(f"{where}: --{flag}: invalid duration {text!r}", "use a duration like 30s or 1m30s")
    return ns


def _is_archive(path: str) -> bool:
    """ADD extracts a local tar (plain, gzip, bzip2, xz or zstd), recognised by its contents; any
    other file, compressed or not, is copied as it is (Docker's rule)."""
    import tarfile

    from layers.unpack import open_decompressed
    try:
        with open(path, "rb") as raw, open_decompressed(raw) as f:
            block = f.read(tarfile.BLOCKSIZE)
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        return True
    except Exception:  # noqa: BLE001 - whatever a decompressor or the header check says: not a tar
        return False
