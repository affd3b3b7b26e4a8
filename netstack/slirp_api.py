"""slirp4netns's API socket: one JSON request per connection, one JSON reply."""

from __future__ import annotations

import json
import os
import socket

from rootless.base.errors import RootlessError


def request(directory: str, name: str, execute: str, arguments: dict | None = None, timeout: float = 5.0) -> dict:
    """Send ``{"execute": ..., "arguments": ...}`` to the socket ``name`` in ``directory``; the
    ``return`` value, or RootlessError with slirp4netns's description."""
    msg = {"execute": execute}
    if arguments is not None:
        msg["arguments"] = arguments
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # socket paths are short
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(f"/proc/self/fd/{fd}/{name}")
            s.sendall(json.dumps(msg).encode())
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
    except OSError as e:
        raise RootlessError(f"slirp4netns API ({execute}): {e.strerror or e}") from None
    finally:
        os.close(fd)
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        raise RootlessError(f"slirp4netns API ({execute}): an unreadable reply") from None
    if "error" in reply:
        desc = reply["error"].get("desc", reply["error"]) if isinstance(reply["error"], dict) else reply["error"]
        raise RootlessError(f"slirp4netns API ({execute}): {desc}")
    return reply.get("return", {})


def add_hostfwd(directory: str, name: str, proto: str, host_addr: str, host_port: int, guest_port: int,
                guest_addr: str = "") -> int:
    args = {"proto": proto, "host_addr": host_addr, "host_port": host_port, "guest_port": guest_port}
    if guest_addr:
        args["guest_addr"] = guest_addr
    return request(directory, name, "add_hostfwd", args).get("id", 0)


def list_hostfwd(directory: str, name: str) -> list[dict]:
    return request(directory, name, "list_hostfwd").get("entries", [])
