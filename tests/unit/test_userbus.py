"""rootless.runtime.userbus: the D-Bus messages a container's scope is asked with, checked by a
private dbus-daemon (which validates every message against its signature and drops the
connection of a client sending a malformed one)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from rootless.runtime import userbus


@pytest.fixture
def bus(tmp_path):
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("no dbus-daemon here")
    path = tmp_path / "bus"
    conf = tmp_path / "bus.conf"
    conf.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={path}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow own="*"/></policy></busconfig>""")
    p = subprocess.Popen([daemon, "--nofork", f"--config-file={conf}"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    yield str(path)
    p.kill()
    p.wait()


def test_a_scope_request_is_a_well_formed_call_that_the_bus_answers(bus):
    # no systemd on this bus: the daemon answers the (valid) call with an error, never a dropped connection
    req = userbus.ScopeRequest(bus, "rootless-0123456789ab.scope", os.getpid())
    assert req.sock is not None
    assert req.answer() is False and req.sock is None
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(bus)
        s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\nBEGIN\r\n"
                  + userbus.message(1, userbus.DBUS, "Hello")
                  + userbus.message(2, userbus.SYSTEMD, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                                    userbus.start_transient_scope_body("rootless-0123456789ab.scope", 1))
                  + userbus.message(3, userbus.DBUS, "GetId")
                  + userbus.message(4, userbus.SYSTEMD, "AttachProcessesToUnit", "ssau",
                                    userbus.attach_body("rootless-0123456789ab.scope", "/ctr", 1)))
        buf = b""
        while b"\r\n" not in buf:
            buf += s.recv(4096)
        assert buf.startswith(b"OK ")
        buf = buf.partition(b"\r\n")[2]
        answers = {}
        while len(answers) < 3:
            for serial in (2, 3, 4):
                kind, _ = userbus.reply_of(buf, serial)
                if kind is not None:
                    answers[serial] = kind
            if len(answers) < 3:
                chunk = s.recv(65536)
                assert chunk, "the bus dropped the connection: a malformed message"
                buf += chunk
    assert answers == {2: userbus.ERROR, 3: userbus.METHOD_RETURN, 4: userbus.ERROR}
    assert userbus.attach(bus, "rootless-0123456789ab.scope", "/ctr", 1) is False  # no systemd here


def test_bus_addresses():
    assert userbus.path_of("unix:path=/run/user/1000/bus") == "/run/user/1000/bus"
    assert userbus.path_of("unix:path=/run/user/1000/bus,guid=0123") == "/run/user/1000/bus"
    assert userbus.path_of("unix:abstract=/tmp/dbus-x") is None


def test_no_bus_is_no_request(tmp_path):
    req = userbus.ScopeRequest(str(tmp_path / "none"), "rootless-0123456789ab.scope", 1)
    assert req.sock is None and req.answer() is False
