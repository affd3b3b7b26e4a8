"""``terminal.InputRelay``: the CLI's stdin reaches a container through a pipe, never as the
CLI's own descriptor (issue 22, item 3). No namespaces: plain pipes and files."""

from __future__ import annotations

import os
import selectors

from rootless.runtime.terminal import InputRelay


def _spin(sel: selectors.BaseSelector, relay: InputRelay, rounds: int = 1000) -> None:
    """Run the caller's loop until the relay has nothing more to do (or ``rounds`` events)."""
    for _ in range(rounds):
        events = sel.select(0.05)
        if not events:
            return
        for key, _ in events:
            if key.data is relay:
                relay.handle(key.fd)


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 1 << 20):
        out += chunk
    return out


def test_a_pipe_is_copied_in_order_and_its_end_closes_the_containers_stdin():
    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    sel = selectors.DefaultSelector()
    relay = InputRelay(sel, src_r, dst_w)
    os.write(src_w, b"one\n")
    _spin(sel, relay)
    os.write(src_w, b"two\n")
    os.close(src_w)
    _spin(sel, relay)
    assert relay.done and not sel.get_map()
    assert _read_all(dst_r) == b"one\ntwo\n"  # EOF: the relay closed its end
    os.close(src_r)
    os.close(dst_r)


def test_a_regular_file_epoll_refuses_is_read_as_the_pipe_takes_it(tmp_path):
    data = os.urandom(3 << 20)  # more than a pipe holds: the reader must take part
    (tmp_path / "in").write_bytes(data)
    src = os.open(tmp_path / "in", os.O_RDONLY)
    dst_r, dst_w = os.pipe()
    sel = selectors.DefaultSelector()
    relay = InputRelay(sel, src, dst_w)
    got = b""
    os.set_blocking(dst_r, False)
    while not relay.done:
        _spin(sel, relay, rounds=4)
        try:
            got += os.read(dst_r, 1 << 20)
        except BlockingIOError:
            pass
    os.set_blocking(dst_r, True)
    got += _read_all(dst_r)
    assert got == data
    os.close(src)
    os.close(dst_r)


def test_a_full_pipe_never_blocks_the_loop_and_input_waits_in_order():
    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    sel = selectors.DefaultSelector()
    relay = InputRelay(sel, src_r, dst_w)
    sent = b""
    os.set_blocking(src_w, False)
    for i in range(80):  # more than the pipes and the relay's buffer hold while nobody reads
        chunk = bytes([65 + i % 26]) * 60000
        try:
            sent += chunk[:os.write(src_w, chunk)]
        except BlockingIOError:
            pass
        _spin(sel, relay, rounds=3)  # returns: the loop stays free to relay output
    assert relay.buf  # input waits in order
    os.close(src_w)
    got = b""
    os.set_blocking(dst_r, False)
    while not relay.done:
        _spin(sel, relay, rounds=4)
        try:
            got += os.read(dst_r, 1 << 20)
        except BlockingIOError:
            pass
    os.set_blocking(dst_r, True)
    got += _read_all(dst_r)
    assert got == sent
    os.close(src_r)
    os.close(dst_r)


def test_a_container_that_closed_its_stdin_ends_the_relay_quietly():
    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    os.close(dst_r)
    sel = selectors.DefaultSelector()
    relay = InputRelay(sel, src_r, dst_w)
    os.write(src_w, b"nobody reads this\n")
    _spin(sel, relay)
    assert relay.done and not sel.get_map()
    os.close(src_r)
    os.close(src_w)


def test_stop_reading_passes_on_what_was_read_then_closes():
    src_r, src_w = os.pipe()
    dst_r, dst_w = os.pipe()
    sel = selectors.DefaultSelector()
    relay = InputRelay(sel, src_r, dst_w)
    os.write(src_w, b"before\n")
    _spin(sel, relay)
    relay.stop_reading()
    os.write(src_w, b"after\n")  # the CLI is gone or detached: not the container's any more
    _spin(sel, relay)
    assert relay.done
    assert _read_all(dst_r) == b"before\n"
    assert os.read(src_r, 100) == b"after\n"  # left for whoever reads the terminal next
    for fd in (src_r, src_w, dst_r):
        os.close(fd)


def test_no_stdin_at_all_is_an_empty_input():
    dst_r, dst_w = os.pipe()
    fd = os.open("/dev/null", os.O_RDONLY)
    os.close(fd)  # a closed descriptor, as a CLI started with stdin closed has
    sel = selectors.DefaultSelector()
    relay = InputRelay(sel, fd, dst_w)
    _spin(sel, relay)
    assert relay.done
    assert _read_all(dst_r) == b""
    os.close(dst_r)
