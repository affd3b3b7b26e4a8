"""A network's IPAM settings and a member's endpoint settings: what Docker's client sends, kept as
Docker shows it, and Docker's refusals (pure)."""

from __future__ import annotations

import pytest

from rootless.base.errors import UsageError
from rootless.engine import netipam

POOL = {"Subnet": "172.28.0.0/16", "IPRange": "172.28.5.0/24", "Gateway": "172.28.5.254",
        "AuxiliaryAddresses": {"a": "172.28.1.5", "b": "172.28.1.6"}}


def test_pools_are_kept_as_given():
    assert netipam.pools([POOL], False) == [POOL]
    assert netipam.pools([{"Subnet": "2001:389::/64", "Gateway": "2001:389::ffff"}], True) == [
        {"Subnet": "2001:389::/64", "Gateway": "2001:389::ffff"}]
    assert netipam.pools([{"Subnet": "10.1.0.0/16", "IPRange": "", "Gateway": ""}], False) == [
        {"Subnet": "10.1.0.0/16"}]
    assert netipam.pools([], False) == []


@pytest.mark.parametrize("pool, ipv6, message", [
    ({"Subnet": "10.1.0.0/33"}, False, "invalid subnet 10.1.0.0/33"),
    ({"Subnet": "10.1.0.0/16", "Gateway": "10.2.0.1"}, False, "no matching subnet for gateway 10.2.0.1"),
    ({"Subnet": "10.1.0.0/16", "Gateway": "nope"}, False, "invalid gateway nope"),
    ({"Subnet": "10.1.0.0/16", "IPRange": "10.2.0.0/24"}, False, "no matching subnet for range 10.2.0.0/24"),
    ({"Subnet": "10.1.0.0/16", "AuxiliaryAddresses": {"a": "10.3.0.1"}}, False,
     "no matching subnet for aux-address 10.3.0.1"),
    ({"Gateway": "10.1.0.1"}, False, "needs a subnet"),
    ({"Subnet": "2001:389::/64"}, False, "IPv6 is not enabled"),
    ({"Subnet": "10.1.0.0/16", "Bogus": 1}, False, "unknown IPAM field 'Bogus'"),
])
def test_pools_refused_as_docker_refuses(pool, ipv6, message):
    with pytest.raises(UsageError, match=message):
        netipam.pools([pool], ipv6)


def test_overlapping_pools_are_refused():
    with pytest.raises(UsageError, match="Pool overlaps"):
        netipam.pools([{"Subnet": "10.1.0.0/16"}, {"Subnet": "10.1.2.0/24"}], False)


def test_cli_flags_pair_with_the_subnet_that_holds_them():
    assert netipam.cli_pools(["10.1.0.0/16", "10.2.0.0/16"], ["10.2.0.1", "10.1.0.1"], ["10.1.5.0/24"]) == [
        {"Subnet": "10.1.0.0/16", "Gateway": "10.1.0.1", "IPRange": "10.1.5.0/24"},
        {"Subnet": "10.2.0.0/16", "Gateway": "10.2.0.1"}]
    with pytest.raises(UsageError, match="no matching subnet for gateway 10.9.0.1"):
        netipam.cli_pools(["10.1.0.0/16"], ["10.9.0.1"], [])
    with pytest.raises(UsageError, match="multiple gateways"):
        netipam.cli_pools(["10.1.0.0/16"], ["10.1.0.1", "10.1.0.2"], [])


NET = {"id": "n" * 64, "name": "app", "ipam": [{"Subnet": "132.124.0.0/16"}, {"Subnet": "2001:389::/64"}]}


def test_endpoint_settings_kept():
    got = netipam.endpoint({"IPAMConfig": {"IPv4Address": "132.124.0.23", "IPv6Address": "2001:389::f00d"},
                            "Links": ["up:bar"], "DriverOpts": {"com.docker-py.setting": "on"},
                            "MacAddress": "02:42:AC:11:00:02", "Aliases": ["x"]}, NET)
    assert got == {"IPAMConfig": {"IPv4Address": "132.124.0.23", "IPv6Address": "2001:389::f00d"},
                   "Links": ["up:bar"], "DriverOpts": {"com.docker-py.setting": "on"},
                   "MacAddress": "02:42:ac:11:00:02"}
    assert netipam.endpoint({"IPAMConfig": {"LinkLocalIPs": ["169.254.8.8"]}}, {"predefined": True}) == {
        "IPAMConfig": {"LinkLocalIPs": ["169.254.8.8"]}}
    assert netipam.endpoint(None, NET) == {}


@pytest.mark.parametrize("config, net, message", [
    ({"IPAMConfig": {"IPv4Address": "10.0.0.5"}}, NET, "Invalid address 10.0.0.5: It does not belong"),
    ({"IPAMConfig": {"IPv4Address": "10.0.0.5"}}, {"name": "plain"}, "only when connecting to networks with user"),
    ({"IPAMConfig": {"IPv4Address": "10.0.0.5"}}, {"predefined": True}, "only when connecting to networks with user"),
    ({"IPAMConfig": {"IPv4Address": "2001:389::1"}}, NET, "not an IPv4 address"),
    ({"IPAMConfig": {"LinkLocalIPs": ["10.0.0.1"]}}, NET, "not a link-local address"),
    ({"MacAddress": "01:00:00:00:00:00"}, NET, "multicast"),
])
def test_endpoint_settings_refused(config, net, message):
    with pytest.raises(UsageError, match=message):
        netipam.endpoint(config, net)
