"""Networks through the Engine API as Docker's clients (docker-py, the docker CLI) use them: IPAM
settings kept and shown, Docker's refusals as 400s, connecting twice refused, a member's endpoint
settings (IPAMConfig, Links, DriverOpts, MacAddress) in ``inspect``."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.userns

IPAM = {"Driver": "default", "Config": [{"Subnet": "172.28.0.0/16", "IPRange": "172.28.5.0/24",
                                         "Gateway": "172.28.5.254", "AuxiliaryAddresses": {"a": "172.28.1.5"}}]}


def test_ipam_config_and_ipv6_are_kept_and_shown(api):
    status, body = api.request("POST", "/networks/create", {"Name": "withipam", "IPAM": IPAM})
    assert status == 201, body
    status, net = api.request("GET", "/networks/withipam")
    assert net["IPAM"] == {"Driver": "default", "Options": None, "Config": IPAM["Config"]}
    status, body = api.request("POST", "/networks/create", {"Name": "six", "EnableIPv6": True, "IPAM": {
        "Config": [{"Subnet": "2001:389::/64", "IPRange": "2001:389::0/96", "Gateway": "2001:389::ffff"}]}})
    assert status == 201, body
    assert api.request("GET", "/networks/six")[1]["EnableIPv6"] is True
    # the docker CLI's flags
    api.docker("network", "create", "--subnet", "10.7.0.0/16", "--gateway", "10.7.0.1", "--ip-range",
               "10.7.1.0/24", "cli")
    got = json.loads(api.docker("network", "inspect", "cli").out)[0]["IPAM"]
    assert got == {"Driver": "default", "Options": {}, "Config": [
        {"Subnet": "10.7.0.0/16", "IPRange": "10.7.1.0/24", "Gateway": "10.7.0.1"}]}


@pytest.mark.parametrize("body, message", [
    ({"Name": "bad", "IPAM": {"Config": [{"Subnet": "10.1.0.0/33"}]}}, "invalid subnet 10.1.0.0/33"),
    ({"Name": "bad", "IPAM": {"Config": [{"Subnet": "10.1.0.0/16", "Gateway": "10.2.0.1"}]}},
     "no matching subnet for gateway 10.2.0.1"),
    ({"Name": "bad", "IPAM": {"Config": [{"Subnet": "2001:389::/64"}]}}, "IPv6 is not enabled"),
    ({"Name": "bad", "IPAM": {"Driver": "other"}}, 'plugin "other" not found'),
])
def test_ipam_refusals_are_400s_and_make_nothing(api, body, message):
    status, answer = api.request("POST", "/networks/create", body)
    assert status == 400 and message in answer["message"], answer
    assert api.request("GET", "/networks/bad")[0] == 404


def test_connecting_twice_is_refused(api):
    api.docker("network", "create", "app")
    api.docker("create", "--name", "c", "busybox", "true")
    body = {"Container": "c", "EndpointConfig": {"Aliases": ["web"]}}
    assert api.request("POST", "/networks/app/connect", body)[0] == 200
    status, answer = api.request("POST", "/networks/app/connect", body)
    assert status == 409 and "endpoint with name c already exists in network app" in answer["message"], answer
    status, net = api.request("GET", "/networks/app")
    assert len(net["Containers"]) == 1


def test_endpoint_settings_in_inspect(api):
    api.request("POST", "/networks/create", {"Name": "sub", "IPAM": {"Config": [{"Subnet": "132.124.0.0/16"}]}})
    status, made = api.request("POST", "/containers/create?name=member", {
        "Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "sub"},
        "NetworkingConfig": {"EndpointsConfig": {"sub": {
            "IPAMConfig": {"IPv4Address": "132.124.0.23"}, "Links": ["upstream:bar"], "Aliases": ["foo"]}}}})
    assert status == 201, made
    ep = api.request("GET", "/containers/member/json")[1]["NetworkSettings"]["Networks"]["sub"]
    assert ep["IPAMConfig"] == {"IPv4Address": "132.124.0.23"} and ep["Links"] == ["upstream:bar"]
    assert ep["Aliases"] == ["foo"]
    # the default network: link-local IPs and driver options
    status, made = api.request("POST", "/containers/create?name=plain", {
        "Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "bridge"},
        "NetworkingConfig": {"EndpointsConfig": {"bridge": {
            "IPAMConfig": {"LinkLocalIPs": ["169.254.8.8"]}, "DriverOpts": {"com.docker-py.setting": "on"}}}}})
    assert status == 201, made
    (ep,) = api.request("GET", "/containers/plain/json")[1]["NetworkSettings"]["Networks"].values()
    assert ep["IPAMConfig"] == {"LinkLocalIPs": ["169.254.8.8"]}
    assert ep["DriverOpts"] == {"com.docker-py.setting": "on"}
    # an address outside the network's subnets: Docker's 400, and no container
    status, answer = api.request("POST", "/containers/create?name=outside", {
        "Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "sub"},
        "NetworkingConfig": {"EndpointsConfig": {"sub": {"IPAMConfig": {"IPv4Address": "10.0.0.5"}}}}})
    assert status == 400 and "It does not belong to any of this network's subnets" in answer["message"], answer
    assert api.request("GET", "/containers/outside/json")[0] == 404


def test_connect_with_a_mac_address_gives_the_container_that_mac(api):
    api.docker("network", "create", "app")
    api.docker("create", "--name", "m", "busybox", "sleep", "300")
    status, answer = api.request("POST", "/networks/app/connect",
                                 {"Container": "m", "EndpointConfig": {"MacAddress": "02:42:ac:11:00:02"}})
    assert status == 200, answer
    ep = api.request("GET", "/containers/m/json")[1]["NetworkSettings"]["Networks"]["app"]
    assert ep["MacAddress"] == "02:42:ac:11:00:02"
    api.docker("start", "m")
    assert api.docker("exec", "m", "cat", "/sys/class/net/eth0/address").out == "02:42:ac:11:00:02\n"
    api.docker("rm", "-f", "m")


def test_a_mac_address_off_slirp4netns_is_refused_and_leaves_nothing(api):
    status, answer = api.request("POST", "/containers/create?name=nomac", {
        "Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"},
        "NetworkingConfig": {"EndpointsConfig": {"none": {"MacAddress": "02:42:ac:11:00:02"}}}})
    assert status == 400 and "conflicting options: mac-address and the network mode" in answer["message"], answer
    assert api.request("GET", "/containers/nomac/json")[0] == 404


def test_an_endpoints_links_give_the_member_another_name(api):
    """EndpointsConfig[N].Links (Compose's ``links:`` on a network): the running member is reached
    under the alias too, from the linking container's start."""
    api.docker("network", "create", "app")
    api.docker("run", "-d", "--name", "upstream", "--network", "app", "--expose", "8080", "busybox", "sh", "-c",
               "mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www")
    status, made = api.request("POST", "/containers/create?name=down", {
        "Image": "busybox", "Cmd": ["sh", "-c", "for i in $(seq 1 50); do wget -qO- http://bar:8080/ && exit 0; "
                                                  "sleep 0.1; done; exit 1"],
        "HostConfig": {"NetworkMode": "app"},
        "NetworkingConfig": {"EndpointsConfig": {"app": {"Links": ["upstream:bar"]}}}})
    assert status == 201, made
    assert api.request("POST", "/containers/down/start")[0] == 204
    assert api.request("POST", "/containers/down/wait")[1]["StatusCode"] == 0
    assert api.docker("logs", "down").out == "up\n"
    ep = api.request("GET", "/containers/down/json")[1]["NetworkSettings"]["Networks"]["app"]
    assert ep["Links"] == ["upstream:bar"]
    api.docker("rm", "-f", "upstream", "down")


def test_a_members_unexposed_port_is_reached_through_the_docker_cli(api):
    """A Compose-like service with no EXPOSE (``node server.js`` on 3000): its fellows reach it."""
    api.docker("network", "create", "app")
    api.docker("run", "-d", "--name", "svc", "--network", "app", "busybox", "sh", "-c",
               "mkdir -p /www && echo svc > /www/index.html && exec httpd -f -p 3000 -h /www")
    r = api.docker("run", "--rm", "--network", "app", "busybox", "sh", "-c",
                   "for i in $(seq 1 50); do wget -qO- http://svc:3000/ 2>/dev/null && exit 0; sleep 0.1; done; exit 1")
    assert r.out == "svc\n"
    api.docker("rm", "-f", "svc")
