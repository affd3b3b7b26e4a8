"""The OCI runtime face's use cases (``rootless oci``, ``rootless-runc``): runc's lifecycle of a
bundle (create, start, state, kill, delete, run) with the runtime of ``rootless run``.

The state directory (``--root``) is a store of container records only: ``containers/ID``
holds the record (``runtime.state``, which the keeper keeps as for any container) and the
``start`` fifo, ``run/ID`` the runtime files. ``runtime.ocispec`` translates the bundle's
config.json; the keeper (``runtime.child``) runs it, waiting for ``start`` between ``create``
and the command's exec (``runtime.ocistart``). No image store is used.
"""

from __future__ import annotations

import os
import signal
import time

from rootless.base.errors import RootlessError, UsageError
from rootless.base.paths import Paths

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

    from rootless.runtime.state import ContainerRecord

OCI_VERSION = "1.0.2"
NOT_FOUND_EXIT = 1  # runc's exit code for every failure of its command line


class OciError(RootlessError):
    """A failure of the OCI face: runc's exit code (1)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint, NOT_FOUND_EXIT)


def default_state_dir() -> str:
    """``$XDG_RUNTIME_DIR/rootless-oci`` where that is usable, else ``/tmp/rootless-oci-UID``."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK | os.X_OK):
        return os.path.join(xdg, "rootless-oci")
    return f"/tmp/rootless-oci-{os.getuid()}"


class Runtime:
    """One state directory; ``warn`` says a warning (the CLI's stderr and ``--log``)."""

    def __init__(self, root: str | None, warn: Callable[[str], None]):
        self.root = os.path.abspath(root or default_state_dir())
        self.warn_fn = warn
        self.paths = Paths(self.root, os.path.join(self.root, "run"))

    # the runtime's Context protocol (rootless.runtime.Context): what the launcher uses
    warm_forker = False  # a runtime's keepers are its caller's children (its plans are the OCI face's anyway)

    def warn(self, message: str) -> None:
        self.warn_fn(message)

    def note(self, line: str) -> None:
        self.warn_fn(line)

    def userns_call(self, fn, *args):
        raise RootlessError("the OCI face has no image store to unpack into")  # never asked: no image

    def slirp_features(self):
        raise RootlessError("the OCI face runs no slirp4netns")  # never asked: host or own network only

    @property
    def store(self):
        raise RootlessError("the OCI face has no image store")  # never asked: a bundle's rootfs is its own

    @property
    def mapping(self):
        raise RootlessError("the OCI face has no shared network")  # never asked: host or own network only

    def _ensure(self) -> None:
        from rootless.base.paths import makedirs_private
        try:
            for d in (self.root, self.paths.containers, self.paths.runroot):
                makedirs_private(d)
            st = os.lstat(self.root)
        except OSError as e:
            raise OciError(f"cannot use the state directory {self.root}: {e.strerror}",
                           "give --root a directory of yours") from None
        if st.st_uid != os.getuid():
            raise OciError(f"the state directory {self.root} is not yours", "give --root a directory of yours")

    def _record(self, cid: str) -> ContainerRecord:
        from rootless.runtime import ocispec, state
        ocispec.check_id(cid)
        rec = state.read(self.paths, key(cid))
        if rec is None:
            if os.path.isdir(self.paths.container(key(cid))):  # half made or damaged: delete removes it
                raise OciError(f"container {cid!r} has a damaged state", f"remove it: delete --force {cid}")
            raise OciError(f"container {cid!r} does not exist")
        return rec

    # ---- create / run
    def create(self, cid: str, bundle: str, pid_file: str | None = None, console_socket: str | None = None,
               attached: bool = False, started: bool = False) -> int | None:
        """``create`` (``started``: false; returns once the process waits for ``start``) or ``run``
        (``started``: ``attached`` waits and returns the exit code, else returns once it runs)."""
        from rootless.runtime import launcher, ocispec, state
        ocispec.check_id(cid)
        bundle = os.path.abspath(bundle)
        config = ocispec.load(bundle)
        from rootless.base import idmap
        from rootless.base.atomic import read_text
        name, uid, gid = idmap.current_user()
        oplan = ocispec.translate(config, bundle, cid, uid, gid,
                                  idmap.parse_subids(read_text(idmap.SUBUID), name, uid),
                                  idmap.parse_subids(read_text(idmap.SUBGID), name, uid))
        if not os.path.isdir(oplan.root):
            raise UsageError(f"root.path {oplan.root} is not a directory", "unpack the rootfs into the bundle")
        for op in oplan.mounts:  # the config's binds (said here, rather than as the kernel's ENOENT)
            if op.kind == "bind" and op.source and not os.path.exists(op.source):
                raise UsageError(f"config.json: mounts ({op.target}): the source {op.source} does not exist",
                                 "create it, or remove the mount")
        terminal_relay = oplan.terminal and not console_socket
        if terminal_relay and not (attached and os.isatty(0)):
            raise UsageError("process.terminal is true: give --console-socket SOCKET (or run attached on a terminal)")
        if console_socket and not oplan.terminal:
            raise UsageError("--console-socket is given but process.terminal is false", "leave it out")
        for w in oplan.warnings:
            self.warn(w)
        spec = self._limits(oplan.spec)
        self._ensure()
        if os.path.lexists(self.paths.container(key(cid))):
            raise OciError(f"container with id exists: {cid}", f"delete it first (delete {cid})")
        # the record's id and name: the key of the OCI ID (hex, as rootless' own ids: a path
        # component, unique in its first 12 digits); the OCI ID itself is kept as asked["OciId"]
        spec = spec._replace(id=key(cid), name=key(cid), remove=attached, tty=oplan.terminal,
                             interactive=terminal_relay, asked={**(spec.asked or {}), "OciId": cid})
        state.create(self.paths, spec, "bind", generated_name=False)
        try:
            fifo = ""
            if not started:
                from rootless.runtime import ocistart
                fifo = os.path.join(self.paths.container(key(cid)), "exec.fifo")
                ocistart.make_fifo(fifo)
            plan = self._launch_plan(oplan, spec, fifo, os.path.abspath(console_socket) if console_socket else "",
                                     attached, terminal_relay)
            if pid_file:
                plan = plan._replace(oci=plan.oci._replace(pid_file=os.path.abspath(pid_file)))
            code = launcher.run(self, plan, oplan.mapping)
        except BaseException:  # a failed create or run leaves nothing behind, as runc's
            self._remove(cid)
            raise
        return code

    def _limits(self, spec):
        """``linux.resources`` where a cgroup v2 subtree is delegated; else one warning each, never a failure."""
        if not spec.limits:
            return spec
        from rootless.runtime import cgroups
        kept, _dropped, warnings = cgroups.split_enforceable(cgroups.detect(), spec.limits)
        for w in warnings:
            self.warn(f"linux.resources: {w}")
        return spec._replace(limits=kept)

    def _launch_plan(self, oplan, spec, fifo: str, console: str, attached: bool, terminal_relay: bool):
        from layers.overlay import RootfsPlan
        from rootless.runtime import seccompprofile
        from rootless.runtime.launchplan import LaunchPlan
        from rootless.runtime.network import NetPlan
        cid = spec.id
        program = None
        if oplan.seccomp is not None:
            program = seccompprofile.program({"profile": oplan.seccomp}, spec.caps, self.paths.runroot)
        winsize = None
        if terminal_relay:
            from rootless.runtime.terminal import terminal_size
            winsize = terminal_size()
        return LaunchPlan(
            spec=spec,
            rootfs=RootfsPlan(method="copy", lowers=(), upper="", work="", merged=self.paths.merged(cid),
                              copy_dir=oplan.root),
            mounts=oplan.mounts, run_dir=self.paths.run_dir(cid), paths=self.paths,
            net=NetPlan(kind="none" if spec.network == "none" else "host", options={}),
            remove_dirs=(self.paths.container(cid),) if attached else (), winsize=winsize,
            single_uid=oplan.mapping.mode == "single", attached=attached, stdin=terminal_relay, seccomp=program,
            oci=oplan.process._replace(start_fifo=fifo, console_socket=console),
            passthrough=not terminal_relay)

    # ---- start / state / kill / delete
    def start(self, cid: str) -> None:
        from rootless.runtime import ocistart
        rec = self._record(cid)
        status = self.status(rec)
        if status != "created":
            raise OciError(f"cannot start a container that is {status}", "create it again (delete, then create)")
        ocistart.signal_start(os.path.join(self.paths.container(key(cid)), "exec.fifo"))
        deadline = time.monotonic() + 10  # until the keeper records the exec (or the failure)
        while time.monotonic() < deadline:
            rec2 = self._read(cid)
            if rec2 is None or rec2["state"].get("status") != "created":
                break
            time.sleep(0.005)

    def _read(self, cid: str) -> ContainerRecord | None:
        from rootless.runtime import state
        return state.read(self.paths, key(cid))

    def status(self, rec: ContainerRecord) -> str:
        """The runtime-spec's status of a record: creating, created, running or stopped."""
        from rootless.runtime import records
        st = rec["state"]
        if st.get("status") == "created":
            if not st.get("pid"):
                return "creating"
            return "created" if records.alive(st.get("keeper", 0), st.get("keeper_start", "")) else "stopped"
        if st.get("status") == "running":
            rec = records.current(self, rec)  # a dead keeper: exited
            return "running" if rec["state"].get("status") == "running" else "stopped"
        return "stopped"

    def state(self, cid: str) -> dict:
        rec = self._record(cid)
        status = self.status(rec)
        spec = rec["spec"]
        out = {"ociVersion": OCI_VERSION, "id": cid, "status": status,
               "pid": rec["state"].get("pid", 0) if status in ("created", "running") else 0,
               "bundle": spec.get("image_name", ""), "annotations": spec.get("labels") or {},
               "rootfs": "", "created": rec.get("created", ""), "owner": ""}
        if out["bundle"]:
            try:
                from rootless.runtime import ocispec
                root = (ocispec.load(out["bundle"]).get("root") or {}).get("path") or ""
                out["rootfs"] = os.path.normpath(os.path.join(out["bundle"], root)) if root else ""
            except RootlessError:
                pass
        return out

    def list(self) -> list[dict]:
        from rootless.runtime import state
        out = []
        for rec in state.all_records(self.paths):
            if not rec.get("corrupt"):
                try:
                    out.append(self.state((rec["spec"].get("asked") or {}).get("OciId") or rec["id"]))
                except RootlessError:
                    pass
        return out

    def kill(self, cid: str, sig: int, all_processes: bool = False) -> None:
        rec = self._record(cid)
        status = self.status(rec)
        if status not in ("created", "running"):
            raise OciError(f"container {cid!r} is not running ({status})")
        pid = rec["state"].get("pid", 0)
        from rootless.runtime import records
        if not records.alive(pid, rec["state"].get("pid_start", "")):
            raise OciError(f"container {cid!r} is not running")
        targets = [pid] + (_processes_of(pid, rec) if all_processes else [])
        for p in targets:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass

    def delete(self, cid: str, force: bool = False) -> None:
        from rootless.runtime import ocispec, state
        ocispec.check_id(cid)
        rec = state.read(self.paths, key(cid))
        if rec is None:
            if not os.path.isdir(self.paths.container(key(cid))):
                raise OciError(f"container {cid!r} does not exist")
            if not force:
                raise OciError(f"container {cid!r} has a damaged state", f"delete --force {cid}")
            self._remove(cid)
            return
        status = self.status(rec)
        if status in ("running", "creating") and not force:
            raise OciError(f"cannot delete container {cid} that is not stopped: {status}",
                           f"stop it first (kill {cid} KILL), or delete --force")
        if status != "stopped":
            self._end(rec)
        self._remove(cid)

    def _end(self, rec: ContainerRecord) -> None:
        """SIGKILL every process of the container, then wait for its keeper to tidy up."""
        from rootless.runtime import records
        st = rec["state"]
        pid = st.get("pid", 0)
        if pid and records.alive(pid, st.get("pid_start", "")):
            for p in [pid] + _processes_of(pid, rec):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        keeper, start = st.get("keeper", 0), st.get("keeper_start", "")
        deadline = time.monotonic() + 10
        while keeper and records.alive(keeper, start) and time.monotonic() < deadline:
            records.wait_for_pid(keeper, 0.1)
        if keeper and records.alive(keeper, start):
            records.kill_keeper_tree(keeper)

    def _remove(self, cid: str) -> None:
        import shutil
        for d in (self.paths.container(key(cid)), self.paths.run_dir(key(cid))):
            shutil.rmtree(d, ignore_errors=True)


def key(cid: str) -> str:
    """The record's id of an OCI container ID: 64 hex digits, as rootless' own ids."""
    import hashlib
    return hashlib.sha256(cid.encode()).hexdigest()


def _processes_of(pid1: int, rec: ContainerRecord) -> list[int]:
    """The container's other processes: those of PID 1's pid namespace (or, sharing the host's,
    PID 1's descendants)."""
    own_ns = (rec["spec"].get("asked") or {}).get("PidMode") != "host"
    try:
        ns = os.readlink(f"/proc/{pid1}/ns/pid")
    except OSError:
        return []
    parent: dict[int, int] = {}
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == pid1:
            continue
        p = int(d)
        try:
            if own_ns:
                if os.readlink(f"/proc/{p}/ns/pid") == ns:
                    out.append(p)
            else:
                with open(f"/proc/{p}/stat") as f:
                    data = f.read()
                parent[p] = int(data[data.rfind(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
    if not own_ns:
        for p in parent:
            q = p
            while q in parent and q != pid1:
                q = parent[q]
            if q == pid1:
                out.append(p)
    return out


def parse_signal(text: str) -> int:
    """``TERM``, ``SIGTERM`` or ``15``."""
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 < n < signal.NSIG:
            return n
    else:
        name = t if t.startswith("SIG") else "SIG" + t
        sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise OciError(f"invalid signal {text!r}", "give a name (TERM, SIGTERM) or a number (15)")
