"""The keeper's channel to its CLI (``rootless.base.channel``)."""

from __future__ import annotations

from rootless.base.channel import Channel


def test_a_message_and_the_end():
    a, b = Channel.pair()
    a.send("pid", pid=7)
    assert b.recv() == ({"type": "pid", "pid": 7}, [])
    a.sock.close()
    assert b.recv() == (None, [])


def test_a_peer_gone_with_our_messages_unread_is_the_end_not_an_error():
    """A CLI killed while its keeper spoke: the kernel resets the keeper's side, which reads that as
    the CLI's end (the container runs on), not as a failure of the container."""
    keeper, cli = Channel.pair()
    keeper.send("running")  # never read
    cli.sock.close()
    assert keeper.recv() == (None, [])
