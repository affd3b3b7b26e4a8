"""slirp4netns: feature probe, argv, and the one process per network namespace.

The keeper (root of the container's user namespace) forks a *spawner* while it is still in
the host's network namespace; once the container's namespace exists, the spawner execs
slirp4netns against it. slirp4netns thereby runs in the host's network namespace (where
its outbound sockets must live), as a child of the keeper, with the keeper's pid as its
parent-death signal source and the keeper's exit fd as its lifetime.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import namedtuple

from rootless.base.errors import RootlessError

GUEST_IP = "10.0.2.100"
GATEWAY = "10.0.2.2"
DNS = "10.0.2.3"
PREFIX_LEN = 24
TAP = "tap0"
API_SOCKET = "slirp4netns.sock"
LOG = "slirp4netns.log"

Features = namedtuple("Features", "path version libslirp options")
# a container's addresses on its slirp4netns network: its own, the gateway (the host), the resolver
Addresses = namedtuple("Addresses", "ip gateway dns prefix")


def addresses(options: dict) -> Addresses:
    """slirp4netns' addresses in the network ``cidr`` (its default 10.0.2.0/24): .100, .2 and .3."""
    cidr = options.get("cidr")
    if not cidr:
        return Addresses(GUEST_IP, GATEWAY, DNS, PREFIX_LEN)
    import ipaddress
    net = ipaddress.IPv4Network(cidr, strict=False)
    return Addresses(str(net[100]), str(net[2]), str(net[3]), net.prefixlen)


def probe(exe: str, cache_file: str | None = None) -> Features:
    """slirp4netns's version and the options it knows (from --help), cached per binary."""
    st = os.stat(exe)
    key = f"{exe}:{st.st_mtime_ns}:{st.st_size}"
    if cache_file:
        try:
            with open(cache_file) as f:
                cached = json.load(f)
            if cached.get("key") == key:
                return Features(exe, cached["version"], cached["libslirp"], tuple(cached["options"]))
        except (OSError, ValueError, KeyError):
            pass
    from rootless.base import proc
    version = proc.run([exe, "--version"], timeout=10).stdout.decode(errors="replace")
    helptext = proc.run([exe, "--help"], timeout=10).stdout.decode(errors="replace")
    feats = parse_probe(exe, version, helptext)
    if cache_file:
        from rootless.base.atomic import write_json
        try:
            write_json(cache_file, {"key": key, "version": feats.version, "libslirp": feats.libslirp,
                                    "options": list(feats.options)})
        except OSError:
            pass
    return feats


def parse_probe(exe: str, version_text: str, help_text: str) -> Features:
    version = libslirp = ""
    for line in version_text.splitlines():
        if line.startswith("slirp4netns version "):
            version = line.split()[-1]
        elif line.startswith("libslirp:"):
            libslirp = line.split()[-1]
    options = []
    for word in help_text.replace(",", " ").replace("=", " ").split():
        if word.startswith("--") and len(word) > 2:
            options.append(word[2:])
    return Features(exe, version, libslirp, tuple(dict.fromkeys(options)))


def argv(feats: Features, netns_path: str, ready_fd: int, exit_fd: int, api_socket: str, options: dict,
         mac: str | None, configure: bool = True) -> list[str]:
    """The command line (pure): configure the tap (not for the shared network's: a bridge's port
    has no address), hide the host's loopback unless asked, and sandbox and seccomp where this
    slirp4netns has them."""
    has = set(feats.options)
    out = [feats.path, *(["--configure"] if configure else []), f"--mtu={options.get('mtu', 65520)}",
           f"--ready-fd={ready_fd}", f"--exit-fd={exit_fd}", f"--api-socket={api_socket}"]
    if not options.get("allow_host_loopback"):
        if "disable-host-loopback" not in has:
            raise RootlessError("this slirp4netns cannot hide the host's loopback (no --disable-host-loopback)",
                                "install slirp4netns 0.3 or newer")
        out.append("--disable-host-loopback")
    for opt in ("enable-sandbox", "enable-seccomp"):
        if opt in has:
            out.append(f"--{opt}")
    if options.get("enable_ipv6"):
        out.append("--enable-ipv6")
    if options.get("cidr"):
        if "cidr" not in has:
            raise RootlessError("this slirp4netns cannot choose its network (no --cidr)",
                                "install slirp4netns 0.3 or newer")
        out.append(f"--cidr={options['cidr']}")
    if mac:
        if "macaddress" not in has:
            raise RootlessError("this slirp4netns cannot set a MAC address", "install slirp4netns 1.0 or newer")
        out.append(f"--macaddress={mac}")
    out += ["--netns-type=path", netns_path, TAP]
    return out


class Slirp:
    """A slirp4netns to be: forked now (in the host's network namespace), exec'd by ``start``."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.ready_r, ready_w = os.pipe()
        exit_r, self.exit_w = os.pipe()
        go_r, self.go_w = os.pipe()
        self.dir_fd = os.open(run_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        log = os.open(os.path.join(run_dir, LOG), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self.pid = os.fork()
        if self.pid == 0:
            _spawner(go_r, self.go_w, log, self.ready_r, self.exit_w, (ready_w, exit_r, self.dir_fd))
        for fd in (go_r, log, ready_w, exit_r):
            os.close(fd)
        # the spawner's numbers for its ends (a fork: the same as ours were)
        self.child_ready, self.child_exit = ready_w, exit_r

    def fds(self) -> dict:
        """The descriptor numbers slirp4netns will see (inherited from the keeper at the fork)."""
        return {"ready": self.child_ready, "exit": self.child_exit,
                "api": f"/proc/self/fd/{self.dir_fd}/{API_SOCKET}"}

    def start(self, args: list[str]) -> None:
        os.write(self.go_w, json.dumps(args).encode())
        os.close(self.go_w)
        self.go_w = -1

    def wait_ready(self, timeout: float = 10.0) -> None:
        import select
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.ready_r], [], [], left)[0]:
                self.stop()
                raise RootlessError(f"slirp4netns did not become ready within {timeout:.0f} s: {self.log_tail()}",
                                    "see `rootless info` for the network checks")
            data = os.read(self.ready_r, 16)
            if data:
                return
            why = self.log_tail()
            hint = "see `rootless info` for the network checks, or use --network none"
            if "/dev/net/tun" in why:
                hint = ("make /dev/net/tun usable (sudo chmod 0666 /dev/net/tun; sudo modprobe tun), "
                        "or use --network none")
            raise RootlessError(f"slirp4netns failed: {why}", hint)

    def api_path(self) -> str:
        return os.path.join(self.run_dir, API_SOCKET)

    def log_tail(self) -> str:
        """What slirp4netns said, warnings left out, on one line."""
        try:
            with open(os.path.join(self.run_dir, LOG), "rb") as f:
                lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()
                         if ln.strip() and not ln.startswith(("WARNING", "sent tapfd", "received tapfd"))]
        except OSError:
            lines = []
        return "; ".join(dict.fromkeys(lines[-4:])) if lines else "no message"

    def stop(self, timeout: float = 2.0) -> None:
        """End slirp4netns (its exit fd closes) and reap it."""
        for attr in ("go_w", "exit_w", "ready_r", "dir_fd"):
            fd = getattr(self, attr)
            if fd >= 0:
                os.close(fd)
                setattr(self, attr, -1)
        if self.pid <= 0:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                break
            if time.monotonic() > deadline:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = float("inf")
            time.sleep(0.002)
        self.pid = 0


def _spawner(go_r: int, go_w: int, log: int, ready_r: int, exit_w: int, keep: tuple[int, ...] = ()) -> None:
    """The forked child: ready itself for the exec while the keeper unshares (parent-death signal,
    session, stdio, inheritable descriptors, signals reset), then wait for the command line and exec
    slirp4netns at once (or leave quietly): the network's start waits on nothing here but the exec."""
    try:
        for fd in (go_w, ready_r, exit_w):
            os.close(fd)
        import prctl
        prctl.set_pdeathsig(signal.SIGTERM)
        os.setsid()
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in keep:
            os.set_inheritable(fd, True)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        chunks = []
        while True:
            data = os.read(go_r, 65536)
            if not data:
                break
            chunks.append(data)
        if not chunks:
            os._exit(0)
        args = json.loads(b"".join(chunks))
        os.execv(args[0], args)
    except BaseException:  # noqa: BLE001 - the keeper sees EOF on the ready fd and reports the log
        try:
            os.write(2, b"cannot exec slirp4netns\n")
        finally:
            os._exit(127)
