"""The warm forker's request and its refusals (``rootless.runtime.forker``), without forking."""

from __future__ import annotations

import array
import os
import resource
import socket

from rootless.runtime import forker


def _request(data: bytes, fds: list[int]) -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    return a, b


def test_a_request_carries_the_plans_sockets_as_descriptors():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    ident = forker.identity()
    data, fds = forker._pack(ident, "a mapping", {"bound": [listener], "name": "web"})
    assert fds == [listener.fileno()]
    n = int.from_bytes(data[:4], "big")
    assert data[4:4 + n].decode() == ident
    copies = [-1, os.dup(listener.fileno())]  # [0] is the keeper's channel
    req = forker._unpack(data[4 + n:], copies)
    again = req["plan"]["bound"][0]
    assert again.fileno() == copies[1] and again.getsockname() == listener.getsockname()
    assert req["mapping"] == "a mapping" and req["env"] == dict(os.environ) and req["cwd"] == os.getcwd()
    again.close()
    listener.close()


def test_a_request_of_another_identity_is_refused_and_its_descriptors_closed():
    r, w = os.pipe()
    data = forker._pack("someone else", None, None)[0]
    client, server = _request(data, [w])
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        assert forker._serve_one(server, srv, forker.identity(), forker._stamp()) is True
        assert client.recv(64) == b"no: identity"
        os.close(w)
        assert os.read(r, 1) == b""  # the forker's copy of the descriptor is closed too
    finally:
        for s in (client, server, srv):
            s.close()
        os.close(r)


def test_a_forker_whose_code_changed_refuses_and_leaves():
    ident = forker.identity()
    data = forker._pack(ident, None, None)[0]
    r, w = os.pipe()
    client, server = _request(data, [w])
    stamp = dict(forker._stamp())
    stamp[next(iter(stamp))] -= 1  # a file changed since the forker started
    try:
        assert forker._serve_one(server, socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET), ident, stamp) is False
        assert client.recv(64) == b"no: the code changed"
    finally:
        client.close()
        server.close()
        os.close(r)


def test_the_identity_is_what_a_keeper_inherits():
    before = forker.identity()
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0 if soft else min(4096, hard), hard))
    try:
        assert forker.identity() != before  # resource limits
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
    assert forker.identity() == before
    assert forker.socket_path(before) != forker.socket_path(before + "x")


def test_the_code_stamp_covers_the_loaded_modules_of_the_code():
    stamp = forker._stamp()
    assert forker.__file__ in stamp and socket.__file__ not in stamp
    assert all(p.endswith(".py") for p in stamp)
