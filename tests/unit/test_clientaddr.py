"""netstack.clientaddr: the address a container is shown for each kind of client (pure)."""

import pytest

from netstack.clientaddr import ClientAddresses, client_ipv4


@pytest.mark.parametrize("host, shown", [
    ("127.0.0.1", "127.0.0.1"), ("192.0.2.7", "192.0.2.7"),
    ("::ffff:127.0.0.1", "127.0.0.1"), ("::ffff:192.0.2.7", "192.0.2.7"),  # a dual-stack socket's IPv4 client
    ("::1", "127.0.0.1"),  # the host's loopback is the container's (reached over IPv4)
    ("2001:db8::5", None), ("fe80::1", None),  # IPv6: the relay's own address, as before
])
def test_client_ipv4(host, shown):
    assert client_ipv4(host) == shown


def test_without_the_rules_only_loopback_clients_keep_their_address():
    c = ClientAddresses("10.0.2.100")
    c.foreign = False  # the kernel refused the rules
    assert c.source(("::ffff:127.0.0.1", 5000, 0, 0)) == "127.0.0.1"
    assert c.source(("192.0.2.7", 5000)) is None
