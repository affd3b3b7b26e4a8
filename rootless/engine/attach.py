"""``rootless attach``: the CLI side of a running container's attach socket.

Output arrives as it is written (no replay: that is ``logs``); typed input, the
window size and the end of input go to the keeper; the detach keys (default
ctrl-p ctrl-q) leave the container running.
"""

from __future__ import annotations

import selectors
import signal

from rootless.base.errors import Conflict, RootlessError, UsageError
from rootless.runtime import keeperclient

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.engine.context import Context
    from rootless.runtime.state import ContainerRecord

_KEYS = {"ctrl-@": 0, "ctrl-[": 27, "ctrl-\\": 28, "ctrl-]": 29, "ctrl-^": 30, "ctrl-_": 31}


def parse_detach_keys(spec: str) -> bytes:
    """Docker's ``--detach-keys``: ``ctrl-p,ctrl-q``, ``a,ctrl-b``..."""
    out = bytearray()
    for key in spec.split(","):
        k = key.strip().lower()
        if len(k) == 1 and k.isascii():  # a key of a terminal: one byte
            out.append(ord(k))
        elif k.startswith("ctrl-") and len(k) == 6 and "a" <= k[5] <= "z":
            out.append(ord(k[5]) - ord("a") + 1)
        elif k in _KEYS:
            out.append(_KEYS[k])
        else:
            raise UsageError(f"invalid detach keys {spec!r}", "use a list like ctrl-p,ctrl-q")
    return bytes(out)


def attach(ctx: Context, rec: ContainerRecord, stdin: bool, detach_keys: bytes, sig_proxy: bool = True) -> int | None:
    """Relay until the container ends (its exit code) or the user detaches (None). The end of
    ``stdin`` closes the container's input only where Docker's would: ``Config.StdinOnce`` (``run
    -i``, ``create -i``) and no tty; else the container keeps its input open for a later attach."""
    from rootless.engine import containers
    from rootless.runtime.terminal import (
        DetachKeys,
        Forwarder,
        RawTerminal,
        read_stdin,
        terminal_size,
        write_all,
    )
    if not containers.is_running(rec):
        raise Conflict(f"you cannot attach to a stopped container {rec['id'][:12]}", "start it first", exit_code=1)
    tty = bool(rec["spec"].get("tty"))
    try:
        link = keeperclient.connect(ctx.paths.run_dir(rec["id"]))
    except OSError as e:
        raise RootlessError(f"cannot attach to {rec['name']}: {e.strerror}") from None
    fwd = Forwarder()
    if not tty:  # Docker's --sig-proxy: the CLI's signals go to the container, or end the CLI
        fwd.take(sig_proxy)
        fwd.started(rec["state"]["pid"])
    sel = selectors.DefaultSelector()
    sel.register(link, selectors.EVENT_READ, "keeper")
    if stdin:
        sel.register(0, selectors.EVENT_READ, "stdin")
    detach = DetachKeys(detach_keys)

    class _Sender:  # what DetachKeys writes to: the keeper, as input
        @staticmethod
        def write(data: bytes) -> None:
            link.send_input(data)

    try:
        with RawTerminal(tty and stdin) as raw:
            if tty:
                _send_size(link, terminal_size())
                if raw.active:
                    signal.signal(signal.SIGWINCH, lambda _s, _f: _send_size(link, terminal_size()))
            while True:
                for key, _ in sel.select():
                    if key.fd not in sel.get_map():  # unregistered by an earlier event of this round
                        continue
                    if key.data == "keeper":
                        kind, value = link.receive()
                        if isinstance(value, int):  # ("exit", the code)
                            return value
                        if value is None:  # ("end", None): the keeper ended without saying; its record tells
                            return containers.wait(ctx, rec)["state"].get("exit_code", 0)
                        write_all(1 if kind == "stdout" else 2, value)
                        continue
                    data = read_stdin()
                    if data is None:  # Docker's rule: the input ends with it only under StdinOnce, no tty
                        sel.unregister(0)
                        if rec["spec"].get("stdin_once") and not tty:
                            link.close_stdin()
                    elif detach.feed(data, None, sink=_Sender):
                        return None
    finally:
        fwd.restore()
        link.close()


def _send_size(link: keeperclient.Link, size: bytes | None) -> None:
    if size:
        try:
            link.send_winsize(size)
        except OSError:
            pass
