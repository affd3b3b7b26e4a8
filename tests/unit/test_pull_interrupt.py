"""A pull interrupted (ctrl-C) while a download stalls ends at once, whichever thread the kernel
hands the signal to and wherever the main thread is, and leaves no helper behind.

The streamer of layers/pull.py runs here with a stalling download (fetch_blob replaced) and
helpers that are real forked processes which, like one following a stalled download, never
answer. SIGUSR1 with a handler that raises stands in for SIGINT, so that a failure cannot end
the test session."""

import os
import signal
import threading
from collections import namedtuple

import pytest

from layers import pull
from layers.store import LayerRef
from rootless.base import userns

BLOB = "sha256:" + "b" * 64
Desc = namedtuple("Desc", "size")


class Interrupted(BaseException):
    pass


class StuckHelper:
    """A helper process that takes a job and then follows it for ever (a stalled download)."""

    def __init__(self, on_submit=None):
        def child(ch):
            msg, _ = ch.recv()
            if msg is None or msg["type"] != "job":
                return 0
            while True:
                signal.pause()

        self.pid, self.ch = userns.fork_child(child, "test helper")
        self.on_submit = on_submit
        self.reaped = None

    def fileno(self):
        return self.ch.fileno()

    def submit(self, job):
        self.ch.send("job", job=job)
        if self.on_submit:
            self.on_submit()

    def result(self):
        return self.ch.expect("result")["value"]

    def close(self):
        try:
            self.ch.send("stop")
        except OSError:
            pass
        self.ch.close()
        self.reaped = userns.reap(self.pid)


class Store:
    def __init__(self):
        self.discarded = None

    def has_blob(self, blob):
        return False

    def unpack_job(self, lr, growing=None, size=0, commit=True):
        return {"tmp": "/nonexistent", "growing": growing}

    def commit_layer(self, job):
        raise AssertionError("nothing is complete")

    def discard_unpacked(self, jobs):
        self.discarded = jobs


@pytest.fixture
def interrupt_handler():
    def raise_(*_):
        raise Interrupted

    old = signal.signal(signal.SIGUSR1, raise_)
    yield
    signal.signal(signal.SIGUSR1, old)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])


def _stalling_fetch(gate: threading.Event, stalled: threading.Event, unblock_signal: bool = False):
    def fetch_blob(client, store, desc, what, progress=None, on_open=None, say=None, stop=None):
        if unblock_signal:  # this thread, and only this one, can be handed the signal
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
        on_open("/tmp/growing")
        stalled.set()
        gate.wait(30)  # the stall: until the test lets go (or the watchdog does)
        raise OSError("the connection broke")
    return fetch_blob


def _watchdog(gate: threading.Event, fired: list, helper: StuckHelper) -> threading.Timer:
    """After 20 s, end the stall and the helper: the main thread then gets going wherever it was
    stuck (in select(), or closing a helper that has a job), and the test fails rather than hangs."""
    def fire():
        fired.append(True)
        gate.set()
        os.kill(helper.pid, signal.SIGTERM)
    t = threading.Timer(20, fire)
    t.daemon = True
    t.start()
    return t


def _run_interrupted(streamer, gate: threading.Event, fired: list, helper: StuckHelper) -> None:
    """Run the pull, which the test interrupts, under the watchdog; let the stall go at the end."""
    watchdog = _watchdog(gate, fired, helper)
    try:
        with pytest.raises(Interrupted):
            streamer.run()
    finally:
        watchdog.cancel()
        gate.set()


def _streamer(helpers):
    lr = LayerRef("sha256:" + "d" * 64, BLOB, "application/vnd.oci.image.layer.v1.tar")
    return pull._Streamer(None, Store(), [lr], {BLOB: Desc(1 << 20)}, lambda _m: None, helpers)


def test_a_signal_handed_to_a_download_thread_wakes_the_main_thread(monkeypatch, interrupt_handler):
    """The main thread blocks the signal, so the kernel hands it to the stalled download thread:
    the pull must still end at once rather than sleep in select() until the download moves."""
    gate, stalled, fired = threading.Event(), threading.Event(), []
    monkeypatch.setattr(pull, "fetch_blob", _stalling_fetch(gate, stalled, unblock_signal=True))
    helper = StuckHelper()
    streamer = _streamer([helper])
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])  # the download thread inherits it
    threading.Thread(target=lambda: (stalled.wait(10), os.kill(os.getpid(), signal.SIGUSR1)), daemon=True).start()
    _run_interrupted(streamer, gate, fired, helper)
    assert not fired, "the interrupted pull waited for its stalled download"
    assert helper.reaped == 128 + signal.SIGKILL  # the helper following the download was stopped
    assert streamer.store.discarded is not None


def test_an_interrupt_just_after_a_helper_got_its_job_stops_that_helper(monkeypatch, interrupt_handler):
    """ctrl-C between handing a helper its job and the next step: the helper, busy for ever with
    the job, is stopped too, or closing it would wait for ever."""
    gate, stalled, fired = threading.Event(), threading.Event(), []
    monkeypatch.setattr(pull, "fetch_blob", _stalling_fetch(gate, stalled))

    def interrupted():
        raise Interrupted

    helper = StuckHelper(on_submit=interrupted)
    streamer = _streamer([helper])
    _run_interrupted(streamer, gate, fired, helper)
    assert not fired and helper.reaped == 128 + signal.SIGKILL, "the helper was left running its job"
