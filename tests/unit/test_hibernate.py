"""The resting keeper's parts (``runtime.idlewait``, ``runtime.hibernate``): the idle program
itself, run for real; the pace of the rests; what a rest carries over."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import struct
import subprocess
import time

import pytest

from rootless.runtime import hibernate, idlewait
from rootless.runtime.logwrite import LogWriter


def _elf(data: bytes) -> dict:
    (ident, etype, machine, _v, entry, phoff, _sh, _fl, _eh, phentsize, phnum, *_rest) = struct.unpack_from(
        "<16sHHIQQQIHHHHHH", data)
    heads = [struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize) for i in range(phnum)]
    return {"ident": ident, "type": etype, "machine": machine, "entry": entry, "heads": heads}


@pytest.mark.parametrize("machine,number", [("x86_64", 62), ("aarch64", 183)])
def test_the_program_is_a_static_executable_with_one_segment(machine, number):
    data = idlewait.program(machine)
    elf = _elf(data)
    assert elf["ident"][:7] == b"\x7fELF\x02\x01\x01" and elf["type"] == 2 and elf["machine"] == number
    (load, stack) = elf["heads"]
    assert load[0] == 1 and load[1] == 5 and load[2] == 0 and load[5] == load[6] == len(data)  # R+X, the whole file
    assert stack[0] == 0x6474E551 and stack[1] == 6  # no executable stack
    assert load[3] < elf["entry"] < load[3] + len(data)
    assert len(data) < 400


def test_no_program_for_another_machine(tmp_path, monkeypatch):
    assert idlewait.program("riscv64") is None
    real = os.uname()
    monkeypatch.setattr(os, "uname", lambda: os.uname_result((*real[:4], "riscv64")))
    assert idlewait.install(str(tmp_path)) is None


def _run(argv_prefix: list[str], program: str, tmp_path):
    """The program waiting on a pipe, then exec'ing a shell that reads the pipe: (process, pipe's write end)."""
    r, w = os.pipe()
    waits = os.memfd_create("wait")
    os.write(waits, idlewait.pollfds([r]))
    os.lseek(waits, 0, os.SEEK_SET)
    out = tmp_path / "out"
    proc = subprocess.Popen([*argv_prefix, program, "/bin/sh", "-c", f'read x </dev/fd/{r}; echo "$$ $x" > {out}'],
                            stdin=waits, pass_fds=(r,))
    os.close(r)
    os.close(waits)
    return proc, w, out


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_program_waits_then_execs_in_place_with_nothing_consumed(machine, tmp_path):
    prefix = []
    if machine != platform.machine():
        emulator = shutil.which(f"qemu-{machine}-static") or shutil.which(f"qemu-{machine}")
        if emulator is None:
            pytest.skip(f"no qemu-{machine} to run the {machine} program here")
        prefix = [emulator]
    path = tmp_path / idlewait.NAME
    path.write_bytes(idlewait.program(machine))
    path.chmod(0o700)
    proc, w, out = _run(prefix, str(path), tmp_path)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.3)  # nothing to read yet: it waits
    if not prefix:
        with open(f"/proc/{proc.pid}/status") as f:
            status = f.read()
        assert "Name:\trootless-keeper" in status
        assert int(status.split("VmRSS:")[1].split()[0]) < 64  # kB
    os.write(w, b"news\n")
    assert proc.wait(timeout=30) == 0
    os.close(w)
    pid, word = out.read_text().split()
    assert word == "news"  # what woke it was left for the exec'd command
    if not prefix:
        assert int(pid) == proc.pid  # the same process: the exec replaced the program


def test_the_program_execs_when_its_time_is_up(tmp_path):
    path = idlewait.install(str(tmp_path))
    r, w = os.pipe()  # never written: only the time can end the wait
    waits = os.memfd_create("wait")
    os.write(waits, idlewait.pollfds([r], timeout=0.2))
    os.lseek(waits, 0, os.SEEK_SET)
    proc = subprocess.Popen([path, "/bin/true"], stdin=waits, pass_fds=(r,))
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        for fd in (r, w, waits):
            os.close(fd)


def test_the_program_exits_127_when_its_exec_fails(tmp_path):
    path = idlewait.install(str(tmp_path))
    assert path is not None and os.access(path, os.X_OK)
    assert idlewait.install(str(tmp_path)) == path  # written once
    with open(path, "r+b") as f:  # changed by something that could write the store
        f.write(b"#!/bin/sh\n")
    assert idlewait.install(str(tmp_path)) == path
    with open(path, "rb") as f:
        assert f.read() == idlewait.program()  # replaced, never run as it was
    assert subprocess.run([path, "/nonexistent"], stdin=subprocess.DEVNULL).returncode == 127  # nothing to wait on


def test_the_pace_waits_longer_after_a_rest_woken_soon(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    pace = hibernate.Pace(1.0)
    pace.woke()
    assert pace.after == 1.0  # no rest yet
    pace.resting()
    now[0] += 2
    pace.woke()
    assert pace.after == 4.0
    for _ in range(5):
        pace.resting()
        now[0] += 1
        pace.woke()
    assert pace.after == hibernate.LONGEST_AFTER
    pace.resting()
    now[0] += hibernate.SOON * hibernate.LONGEST_AFTER
    pace.woke()
    assert pace.after == 1.0  # a long rest: back to the start
    for _ in range(3):
        pace.resting(timeout=2.0)
        now[0] += 2.0
        pace.woke()
    assert pace.after == 1.0  # rests that ended at their own time (a timer's): nothing said


@pytest.mark.parametrize("raw,after", [("", 1.0), ("2.5", 2.5), ("0", None), ("-1", None), ("soon", 1.0)])
def test_the_idle_setting(raw, after):
    assert hibernate.after_setting({hibernate.ENV: raw}) == after


def test_a_partial_line_crosses_a_rest_with_its_time(tmp_path):
    import json
    before = LogWriter(str(tmp_path / "log"))
    assert before.fds() and before.partial() == {}
    before.write("stdout", b"/ # ")  # a prompt: no end of line yet
    partial = before.partial()
    assert list(partial) == ["stdout"] and partial["stdout"][0] == b"/ # "
    for fd in before.fds():  # the rest's exec: the descriptor closes, nothing is flushed
        os.close(fd)
    assert (tmp_path / "log").read_bytes() == b""
    after = LogWriter(str(tmp_path / "log"))
    after.take_partial(partial)
    after.write("stdout", b"ls\n")
    after.close()
    assert after.fds() == []
    entries = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    assert [e["log"] for e in entries] == ["/ # ls\n"]



def test_a_listening_relay_crosses_a_rest_with_its_epoll_set():
    from netstack.relay import Relay
    relay = Relay("127.0.0.1")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    relay.publish(listener, "tcp", 80)
    assert relay.restable()
    data = hibernate._dump({"relay": relay})
    pid = os.fork()
    if pid == 0:  # as the keeper after its rest: the same descriptors, new objects
        code = 1
        try:
            again = hibernate._load(data)["relay"]
            client = socket.create_connection(listener.getsockname())
            sock, handler, _mask = again._fds[listener.fileno()]
            if again.fileno() == relay.fileno() and again._fds.keys() == relay._fds.keys() and again._epoll.poll(5) \
                    and sock is handler.sock:  # one object per descriptor, as before
                code = 0  # the registration came along
            client.close()
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    handler = relay._fds[listener.fileno()][1]
    relay._fds[listener.fileno()][1] = object()  # a connection being relayed: no rest
    assert not relay.restable()
    relay._fds[listener.fileno()][1] = handler
    relay.close()


def test_what_a_resting_keeper_holds_is_read_from_outside(tmp_path):
    """``nothing_to_log``: the pipes in the idle program's wait list, asked through /proc."""
    path = idlewait.install(str(tmp_path))
    r, w = os.pipe()
    waits = os.memfd_create("wait")
    os.write(waits, idlewait.pollfds([])[:16] + struct.pack("<ihh", r, 0, 0))  # not waited on for input:
    # what it holds stays there
    os.lseek(waits, 0, os.SEEK_SET)
    proc = subprocess.Popen([path, "/bin/true"], stdin=waits, pass_fds=(r,))
    try:
        deadline = time.monotonic() + 10
        while hibernate._name(proc.pid) != idlewait.NAME and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hibernate.nothing_to_log(proc.pid)
        os.write(w, b"x")
        assert not hibernate.nothing_to_log(proc.pid)
        os.read(r, 1)
        assert hibernate.nothing_to_log(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        for fd in (r, w, waits):
            os.close(fd)
    assert not hibernate.nothing_to_log(os.getpid())  # not the idle program


def test_a_udp_port_without_flows_lets_the_keeper_rest():
    from netstack.relay import Relay
    relay = Relay("127.0.0.1")
    port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)  # as the CLI binds it
    port.bind(("127.0.0.1", 0))
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.settimeout(10)
    relay.publish(port, "udp", target.getsockname()[1])
    assert relay.restable() and relay.timeout() is None  # no flow: no sweep to wake for
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.sendto(b"ping", port.getsockname())
    relay.serve(5)
    assert target.recv(16) == b"ping"
    assert not relay.restable() and relay.timeout() is not None  # a flow: swept when idle
    relay.close()
    for s in (target, client):
        s.close()


def test_a_missing_program_is_not_written_again_when_asked_not_to(tmp_path):
    """The shared network's holder looks with ``create=False``: a store being removed after its
    last container is not made again under the remover (its directory would not empty)."""
    if idlewait.program() is None:
        pytest.skip("no idle program for this machine")
    gone = tmp_path / "store" / "libexec"
    assert idlewait.install(str(gone), create=False) is None and not gone.exists()
    path = idlewait.install(str(gone))
    with open(path, "r+b") as f:
        f.write(b"#!/bin/sh\n")
    assert idlewait.install(str(gone), create=False) == path  # a changed file is still replaced
    with open(path, "rb") as f:
        assert f.read() == idlewait.program()
    os.unlink(path)
    assert idlewait.install(str(gone), create=False) is None and not os.path.exists(path)
