"""The keeper's attach protocol has one owner, ``runtime.keeperclient``: its tags and framing
appear nowhere else, and the keeper's end and a client's end understand each other."""

from __future__ import annotations

import ast
import os
import socket
from pathlib import Path
from types import SimpleNamespace

from rootless.runtime import keeper, keeperclient

REPO = Path(__file__).resolve().parents[2]
OWNER = REPO / "rootless" / "runtime" / "keeperclient.py"
TAGS = {b"o", b"e", b"x", b"i", b"w", b"c"}
NAMES = {"OUT", "ERR", "EXIT", "IN", "WINSIZE", "CLOSE_STDIN"}


def _sources():
    for path in sorted((REPO / "rootless").rglob("*.py")):  # layers/ and netstack/ never speak to a keeper
        if path != OWNER:
            yield path, ast.parse(path.read_text(), str(path))


def test_no_tag_of_the_attach_socket_outside_its_client():
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in TAGS | {"attach.sock", b"attach.sock"}:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
            # a tag reached through another module (keeper.EXIT, ...)
            if isinstance(node, ast.Attribute) and node.attr in NAMES and isinstance(node.value, ast.Name) \
                    and node.value.id in ("keeper", "keeperclient", "protocol"):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not found, "the attach socket's tags belong to rootless/runtime/keeperclient.py: " + "; ".join(found)


def _pair():
    k, c = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return k, keeperclient.Link(c)


def test_the_keepers_messages_reach_a_client():
    k, link = _pair()
    try:
        k.send(keeperclient.output_message("stdout", b"out"))
        k.send(keeperclient.output_message("stderr", b"err"))
        k.send(keeperclient.output_message("stdout", b""))
        k.send(keeperclient.exit_message(137))
        assert link.receive() == ("stdout", b"out")
        assert link.receive() == ("stderr", b"err")
        assert link.receive() == ("stdout", b"")
        assert link.receive() == ("exit", 137)
        k.close()
        assert link.receive() == ("end", None)
    finally:
        link.close()


def test_exit_code_skips_the_output_and_tells_a_silent_end():
    k, link = _pair()
    k.send(keeperclient.output_message("stdout", b"x" * 1000))
    k.send(keeperclient.exit_message(3))
    assert link.exit_code() == 3
    k.close()
    link.close()
    k, link = _pair()
    k.send(keeperclient.output_message("stderr", b"bye"))
    k.close()
    assert link.exit_code() is None
    link.close()


def test_a_clients_requests_reach_the_keeper():
    k, link = _pair()
    try:
        link.send_input(b"hello")
        link.resize(24, 80)
        link.close_stdin()
        link.send_input(b"")
        got = [keeperclient.parse_request(k.recv(keeperclient.MAX_MESSAGE)) for _ in range(4)]
        assert got[0] == ("input", b"hello")
        assert got[1][0] == "winsize" and len(got[1][1]) == 8
        assert got[2] == ("close-stdin", b"")
        assert got[3] == ("input", b"")
        assert keeperclient.parse_request(b"?junk") == (None, b"junk")
    finally:
        k.close()
        link.close()


def test_the_keeper_writes_a_clients_input_and_closes_it_on_request():
    k, link = _pair()
    r, w = os.pipe()
    stdio = SimpleNamespace(master=-1, stdin_w=w)  # what of keeper.Stdio a client's message touches
    try:
        link.send_input(b"typed")
        assert keeper._from_client(k, stdio)
        assert os.read(r, 100) == b"typed"
        link.close_stdin()
        assert keeper._from_client(k, stdio)
        assert stdio.stdin_w == -1
        assert os.read(r, 100) == b""  # the container reads EOF
        link.close()
        assert not keeper._from_client(k, stdio)  # the client is gone
    finally:
        os.close(r)
        k.close()


def test_a_client_meets_the_keeper_on_its_attach_socket_and_its_pending_socket(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    listener = keeper.listen(str(run))
    link = keeperclient.connect(str(run))
    try:
        conn, _ = listener.accept()
        assert link.peer_pid() == os.getpid()
        conn.send(keeperclient.exit_message(0))
        assert link.exit_code() == 0
        conn.close()
    finally:
        link.close()
        listener.close()
    pending = tmp_path / "pending"
    sock, path = keeperclient.register_pending(str(pending))
    try:
        [conn] = keeper.connect_pending(str(pending))
        waiting = keeperclient.accept_pending(sock)
        conn.send(keeperclient.output_message("stdout", b"first"))
        assert waiting.receive() == ("stdout", b"first")
        conn.close()
        waiting.close()
        assert not os.path.exists(path)  # one start serves it
    finally:
        keeperclient.unregister_pending(sock, path)
    assert not pending.exists()


def test_sync_logs_what_the_outputs_hold_before_the_keeper_answers():
    """``sync``: the keeper drains the container's outputs into the log (and to the clients),
    then answers; the client skips the output on the way; the outputs' ends stay the main loop's."""
    import selectors
    k, link = _pair()
    r, w = os.pipe()
    sel = selectors.DefaultSelector()
    sel.register(r, selectors.EVENT_READ, "stdout")
    logged = []
    log = SimpleNamespace(write=lambda stream, data: logged.append((stream, data)))
    try:
        os.write(w, b"written before the sync\n")
        os.close(w)  # and its end: not consumed by the sync
        link.sock.send(b"s")  # what link.sync sends, without waiting for the answer here
        assert keeper._from_client(k, SimpleNamespace(master=-1, stdin_w=-1),
                                   lambda c: keeper._synced(c, sel, log, {}, [k]))
        assert logged == [("stdout", b"written before the sync\n")]
        assert r in {key.fd for key in sel.get_map().values()}
        assert link.receive() == ("stdout", b"written before the sync\n")  # a client's copy
        assert link.sock.recv(keeperclient.MAX_MESSAGE) == keeperclient.synced_message()  # then the answer
        k.send(keeperclient.output_message("stderr", b"more"))
        k.send(keeperclient.synced_message())
        link.sock.settimeout(5)
        assert link.sync() is True  # skips the output, ends at the answer
        assert keeperclient.parse_request(k.recv(keeperclient.MAX_MESSAGE)) == ("sync", b"")
        k.send(keeperclient.exit_message(0))
        assert link.sync() is False  # the container ended first
        assert link.sync(timeout=0.1) is False  # no answer: a keeper from before sync
    finally:
        sel.close()
        os.close(r)
        k.close()
        link.close()


def _outputs():
    """A keeper's ends of a container's stdout and stderr, and the container's (kept open)."""
    stdio = keeper.Stdio(tty=False, interactive=False, attached=False, cli_stdin=False)
    ends = os.dup(stdio.out_w), os.dup(stdio.err_w)
    stdio.connect_keeper()
    return stdio, ends


def test_an_output_a_sync_drained_does_not_stall_the_keeper():
    """A sync and the output it drains in one round of the keeper's loop: the output's own event
    then finds nothing, and the keeper goes on (it waited in a read until the container wrote
    again: no sync answered, and a PID 1 stopped at its exit waited for the keeper forever)."""
    import threading
    import time
    k, link = _pair()
    stdio, (out_w, err_w) = _outputs()
    logged = []
    log = SimpleNamespace(write=lambda stream, data: logged.append((stream, data)), close=lambda: None)
    wake_r, wake_w = os.pipe()
    wakeup = SimpleNamespace(r=wake_r, drain=lambda: None, close=lambda: None)

    class Trigger:  # before the loop's first wait: the sync, then the output (in that order)
        fired = False

        def timeout(self):
            if not self.fired:
                self.fired = True
                link.sock.send(b"s")  # what link.sync sends
                time.sleep(0.05)
                os.write(out_w, b"quick\n")
            return 0.05

        def tick(self):
            pass
    loop = threading.Thread(target=keeper.supervise, args=(stdio, None, log, None, Trigger(), wakeup, [k]), daemon=True)
    link.sock.settimeout(5)
    try:
        loop.start()
        while link.sock.recv(keeperclient.MAX_MESSAGE) != keeperclient.synced_message():
            pass
        assert logged == [("stdout", b"quick\n")]
        assert link.sync(timeout=3) is True  # the keeper still answers
        os.close(out_w)
        os.close(err_w)
        loop.join(5)
        assert not loop.is_alive()
        assert logged == [("stdout", b"quick\n")]
    finally:
        link.close()
        for fd in (wake_r, wake_w):
            os.close(fd)


def test_a_sync_awaits_the_first_output_of_a_starting_pid1(monkeypatch):
    """``start`` returns once the command is exec'd; a PID 1 that has not run since (the scheduler
    chose others) has its first output awaited by a sync in the container's first second, so that
    ``logs`` right after the start of ``echo`` shows it (it was empty, now and then, under load).
    The wait is bounded (the answer is due before the client gives up) and ends as soon as PID 1
    sleeps; none once the container is past its start."""
    import selectors
    import threading
    import time
    k, link = _pair()
    r, w = os.pipe()
    os.set_blocking(r, False)
    sel = selectors.DefaultSelector()
    sel.register(r, selectors.EVENT_READ, "stdout")
    logged = []
    log = SimpleNamespace(write=lambda stream, data: logged.append((stream, data)))
    state = {"runnable": True}
    monkeypatch.setattr(keeper, "_runnable", lambda pid: pid == 4242 and state["runnable"])

    def container():
        time.sleep(0.3)
        os.write(w, b"quick 92\n")
        state["runnable"] = False  # it ended
    try:
        pid1 = threading.Thread(target=container, daemon=True)
        pid1.start()
        assert keeper._synced(k, sel, log, {}, [], (4242, time.monotonic() + 5)) is True
        assert logged == [("stdout", b"quick 92\n")]
        assert link.sock.recv(keeperclient.MAX_MESSAGE) == keeperclient.synced_message()
        pid1.join()  # its end is recorded (under load it came after the line below and undid it)
        state["runnable"] = True  # never runs: answered at the end of the start's window
        began = time.monotonic()
        assert keeper._synced(k, sel, log, {}, [], (4242, began + 0.2)) is False
        assert 0.15 < time.monotonic() - began < 4  # the window's end, not a 5 s wait
        for first_run in ((4242, time.monotonic()), (4243, time.monotonic() + 5), None):
            began = time.monotonic()  # past its start, not PID 1's pid, nothing asked: no wait
            assert keeper._synced(k, sel, log, {}, [], first_run) is False
            assert time.monotonic() - began < 2  # far below the 5 s a wait would last, under any load
        state["runnable"] = False  # asleep (or stopped, or ended): what it wrote is there
        began = time.monotonic()
        assert keeper._synced(k, sel, log, {}, [], (4242, began + 5)) is False
        assert time.monotonic() - began < 2
    finally:
        sel.close()
        for fd in (r, w):
            os.close(fd)
        k.close()
        link.close()


def test_runnable_is_a_running_or_waiting_process_not_a_sleeping_or_gone_one():
    import subprocess
    import sys
    import time
    assert keeper._runnable(os.getpid())  # reading its own stat: running
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while keeper._runnable(sleeper.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not keeper._runnable(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not keeper._runnable(sleeper.pid)  # reaped: no such process
