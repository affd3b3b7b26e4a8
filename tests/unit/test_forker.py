"""The warm forker's requests and its refusals (``rootless.runtime.forker``, ``rootless.base.forkconn``),
without forking."""

from __future__ import annotations

import _socket
import os
import resource
import socket

import pytest

from rootless.base import forkconn, paths
from rootless.cli import warm
from rootless.runtime import forker


@pytest.fixture
def listening(tmp_path):
    """A forker's listening socket, and a client connected to it."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(str(tmp_path / "f.sock"))
    srv.listen(4)
    client = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    client.connect(str(tmp_path / "f.sock"))
    yield srv, client
    srv.close()
    client.close()


def test_a_keeper_request_carries_the_plans_sockets_as_descriptors():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    request, fds = forker._pack_keeper("a mapping", {"bound": [listener], "name": "web"})
    assert fds == [listener.fileno()]
    copies = [-1, os.dup(listener.fileno())]  # [0] is the keeper's channel
    req = forker._unpack(request, copies)
    again = req["plan"]["bound"][0]
    assert again.fileno() == copies[1] and again.getsockname() == listener.getsockname()
    assert req["mapping"] == "a mapping" and req["env"] == dict(os.environ) and req["cwd"] == os.getcwd()
    again.close()
    listener.close()


def test_a_request_of_another_identity_is_refused_and_its_descriptors_closed(listening):
    srv, client = listening
    r, w = os.pipe()
    forkconn.send(client, "someone else", forkconn.SESSION, b"", [w])
    os.close(w)
    sessions = forker._Sessions()
    assert forker._accept(srv, forkconn.identity(), forker._stamp(), sessions) is True
    assert client.recv(64) == b"no: identity"
    assert os.read(r, 1) == b""  # the forker's copy of the descriptor is closed too
    assert sessions.fds() == []
    os.close(r)


def test_a_process_of_another_user_namespace_is_refused(tmp_path):
    """A container's process whose uid is the user's (keep-id, a single-uid map) and which reaches
    the forker's socket (its directory bound in) gets nothing run: neither a session nor a plan
    unpickled out here."""
    from rootless.base import syscalls
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(str(tmp_path / "f.sock"))
    srv.listen(4)
    ident = forkconn.identity()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            syscalls.unshare(syscalls.CLONE_NEWUSER)  # its uid shows as the user's to the forker
            c = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
            c.connect(str(tmp_path / "f.sock"))
            forkconn.send(c, ident, forkconn.SESSION, b"", [1])
            os.write(w, c.recv(64))
        except BaseException as e:  # noqa: BLE001 - shown by the assertion
            os.write(w, repr(e).encode())
        finally:
            os._exit(0)
    os.close(w)
    sessions = forker._Sessions()
    assert forker._accept(srv, ident, forker._stamp(), sessions, ("m:f",)) is True
    assert os.read(r, 64) == b"no: not this user's, or not from here"
    assert sessions.fds() == []
    os.waitpid(pid, 0)
    os.close(r)
    srv.close()


def test_a_forker_started_for_keepers_leaves_for_a_session(listening):
    srv, client = listening
    ident = forkconn.identity()
    forkconn.send(client, ident, forkconn.SESSION, b"", [1])
    assert forker._accept(srv, ident, forker._stamp(), forker._Sessions(), ()) is False
    assert client.recv(64) == b"no: no session entry"


def test_a_forker_whose_code_changed_refuses_and_leaves(listening):
    srv, client = listening
    ident = forkconn.identity()
    forkconn.send(client, ident, forkconn.KEEPER, b"", [1])
    stamp = dict(forker._stamp())
    stamp[next(iter(stamp))] -= 1  # a file changed since the forker started
    assert forker._accept(srv, ident, stamp, forker._Sessions()) is False
    assert client.recv(64) == b"no: the code changed"


def test_a_request_of_an_unknown_kind_is_refused(listening):
    srv, client = listening
    ident = forkconn.identity()
    forkconn.send(client, ident, b"shell", b"", [1])
    assert forker._accept(srv, ident, forker._stamp(), forker._Sessions()) is True
    assert client.recv(64).startswith(b"no:")


def test_the_identity_is_what_a_forked_process_inherits():
    before = forkconn.identity()
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0 if soft else min(4096, hard), hard))
    try:
        assert forkconn.identity() != before  # resource limits
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
    assert forkconn.identity() == before
    assert forkconn.socket_path(before) != forkconn.socket_path(before + "x")
    assert forkconn.private_dir() == paths.private_runtime_dir({})


def test_the_code_stamp_covers_the_loaded_modules_of_the_code():
    stamp = forker._stamp()
    assert forker.__file__ in stamp and socket.__file__ not in stamp  # the standard library: its own
    assert all(p.startswith(forkconn.code_root()) for p in stamp)


@pytest.mark.parametrize("argv,verb", [(["run", "--rm", "x"], "run"), (["--root", "/r", "ps"], "ps"),
                                       (["--root=/r", "--debug", "rm", "-f"], "rm"), (["--debug"], ""), ([], "")])
def test_the_verb_past_the_global_options(argv, verb):
    assert warm._verb(argv) == verb


def test_long_and_interactive_verbs_are_not_warm():
    for verb in ("build", "system", "login", "events", "attach", "unshare", "load", "save", "cp", "oci"):
        assert verb not in warm.VERBS


def test_a_forker_in_another_user_namespace_is_not_used(tmp_path, monkeypatch):
    """A process in a container put in the forker's place (its directory bound in) gets no request:
    not the caller's environment, nor its stdio."""
    from rootless.base import syscalls
    path = str(tmp_path / "fake.sock")
    monkeypatch.setattr(forkconn, "socket_path", lambda ident: path)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            syscalls.unshare(syscalls.CLONE_NEWUSER)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            srv.bind(path)
            srv.listen(4)
            os.write(w, b"listening")
            conn, _ = srv.accept()
            conn.settimeout(5)
            os.write(w, conn.recv(1 << 16) or b"nothing")
        except BaseException as e:  # noqa: BLE001 - shown by the assertion
            os.write(w, repr(e).encode())
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 64) == b"listening"
    assert forkconn.connect(forkconn.identity(), "no.such.server") is None
    assert os.read(r, 64) == b"nothing"  # the connection was closed unused
    os.waitpid(pid, 0)
    os.close(r)
