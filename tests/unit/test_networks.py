"""User-defined networks: names, filters, Docker's JSON, the records and their membership
(rootless/engine/networks.py), the spec field, and the links a start makes of them
(rootless/runtime/network.py, netstack/links.py). Real files in a temporary store, no namespaces."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from rootless.base.errors import (
    Conflict,
    ContainerNotFound,
    NetworkNotFound,
    RootlessError,
    UsageError,
)
from rootless.base.paths import Paths
from rootless.engine import networks
from rootless.runtime import state
from rootless.runtime.spec import ContainerSpec, RunOptions, network_fields


@pytest.fixture
def ctx(tmp_path):
    p = Paths(str(tmp_path / "store"), str(tmp_path / "run"))
    p.ensure()
    warned = []
    return SimpleNamespace(paths=p, warn=warned.append, warned=warned)


def container(ctx, name: str, nets=(), network: str = "slirp4netns", running: bool = False,
              exposed=("8080/tcp",)) -> dict:
    """A container record; ``running``: as if its keeper were this process."""
    cid = os.urandom(32).hex()
    spec = ContainerSpec(id=cid, name=name, image_id="sha256:" + "0" * 64, image_name="busybox", layers=(),
                         argv=("true",), env=(), user="", workdir="/", hostname=cid[:12], network=network,
                         exposed=tuple(exposed), networks=tuple((nid, list(a)) for nid, a in nets))
    rec = state.create(ctx.paths, spec, "kernel", generated_name=False)
    if running:
        rec = state.update_state(ctx.paths, cid, status="running", keeper=os.getpid(),
                                 keeper_start=state.pid_start_time(os.getpid()),
                                 net={"ip": "10.0.2.100", "gateway": "10.0.2.2", "mac": "02:00:00:00:00:01",
                                      "ports": []})
    return rec


# ---- names -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["app", "a", "my.net_1-2", "A9", "x" * 255])
def test_good_names(name):
    networks.check_name(name)


@pytest.mark.parametrize("name", ["", "-app", ".app", "_app", "a b", "a/b", "a:b", "net!", "é", "x" * 256])
def test_bad_names(name):
    with pytest.raises(UsageError, match="invalid network name") as e:
        networks.check_name(name)
    assert e.value.exit_code == 1


# ---- filters -----------------------------------------------------------------------------------
NET = {"id": "abcdef" + "0" * 58, "name": "backend", "driver": "bridge", "labels": {"tier": "db", "x": ""}}
BUILTIN = dict(NET, name="bridge", labels={}, predefined=True)


@pytest.mark.parametrize("net, filters, want", [
    (NET, [], True),
    (NET, ["name=back"], True),
    (NET, ["name=end"], True),
    (NET, ["name=front"], False),
    (NET, ["name=front", "name=back"], True),  # one key's values are alternatives
    (NET, ["name=back", "driver=host"], False),  # keys must all match
    (NET, ["id=abcd"], True),
    (NET, ["id=bcd"], False),
    (NET, ["label=tier"], True),
    (NET, ["label=tier=db"], True),
    (NET, ["label=tier=web"], False),
    (NET, ["label=x="], True),
    (NET, ["label=nope"], False),
    (NET, ["driver=bridge"], True),
    (NET, ["type=custom"], True),
    (NET, ["type=builtin"], False),
    (BUILTIN, ["type=builtin"], True),
    (NET, ["scope=local"], True),
    (NET, ["scope=swarm"], False),
    (NET, ["dangling=true"], True),
    (BUILTIN, ["dangling=true"], False),
])
def test_filters(net, filters, want):
    assert networks.matches(net, networks.parse_filters(filters), used=set()) is want


def test_dangling_knows_the_networks_in_use():
    assert networks.matches(NET, networks.parse_filters(["dangling=false"]), used={NET["id"]})
    assert not networks.matches(NET, networks.parse_filters(["dangling=1"]), used={NET["id"]})


@pytest.mark.parametrize("text", ["name", "color=red", "type=other", "dangling=maybe"])
def test_bad_filters(text):
    with pytest.raises(UsageError, match="invalid filter"):
        networks.parse_filters([text])


# ---- records -----------------------------------------------------------------------------------
def test_predefined_networks_always_exist(ctx):
    nets = networks.all_networks(ctx.paths)
    assert [(n["name"], n["driver"]) for n in nets] == [("bridge", "bridge"), ("host", "host"), ("none", "null")]
    assert all(len(n["id"]) == 64 for n in nets)
    assert networks.find(ctx.paths, "host")["id"] == networks.predefined_id("host")
    for name in ("bridge", "host", "none"):
        with pytest.raises(Conflict, match=f"{name} is a pre-defined network and cannot be removed"):
            networks.rm(ctx, name)


def test_create_find_ls_rm(ctx):
    nid = networks.create(ctx, "app", labels=["tier=web", "plain"], options={"k": "v"})
    assert len(nid) == 64 and os.path.exists(ctx.paths.network_record(nid))
    for ref in ("app", nid, nid[:5]):
        assert networks.find(ctx.paths, ref)["id"] == nid
    assert [n["name"] for n in networks.ls(ctx)] == ["app", "bridge", "host", "none"]
    assert [n["name"] for n in networks.ls(ctx, ["type=custom"])] == ["app"]
    assert [n["name"] for n in networks.ls(ctx, ["label=tier=web"])] == ["app"]
    assert networks.find(ctx.paths, "app")["labels"] == {"tier": "web", "plain": ""}
    networks.rm(ctx, "app")
    with pytest.raises(NetworkNotFound, match="^network app not found$") as e:
        networks.find(ctx.paths, "app")
    assert e.value.exit_code == 1


def test_create_refuses(ctx):
    networks.create(ctx, "app")
    for name in ("app", "bridge", "host", "none"):
        with pytest.raises(Conflict, match=f"^network with name {name} already exists$"):
            networks.create(ctx, name)
    with pytest.raises(Conflict, match="default is a pre-defined network"):
        networks.create(ctx, "default")
    with pytest.raises(RootlessError, match='plugin "overlay" not found'):
        networks.create(ctx, "x", driver="overlay")
    with pytest.raises(UsageError, match="no matching subnet for gateway 10.8.0.1"):
        networks.create(ctx, "x", subnets=[{"Subnet": "10.9.0.0/16", "Gateway": "10.8.0.1"}])
    assert [n["name"] for n in networks.user_networks(ctx.paths)] == ["app"]


def test_a_damaged_record_is_left_out(ctx):
    os.makedirs(ctx.paths.networks, exist_ok=True)
    with open(ctx.paths.network_record("f" * 64), "w") as f:
        f.write("{cut")
    assert [n["name"] for n in networks.all_networks(ctx.paths)] == ["bridge", "host", "none"]


def test_ambiguous_prefix(ctx, monkeypatch):
    ids = iter(["ab" + "1" * 62, "ab" + "2" * 62])
    monkeypatch.setattr("rootless.runtime.names.new_id", lambda: next(ids))
    networks.create(ctx, "one")
    networks.create(ctx, "two")
    with pytest.raises(RootlessError, match="ambiguous"):
        networks.find(ctx.paths, "ab")
    assert networks.find(ctx.paths, "ab1")["name"] == "one"


# ---- membership ----------------------------------------------------------------------------------
def test_members_rm_and_prune(ctx):
    app = networks.create(ctx, "app")
    networks.create(ctx, "empty")
    c1 = container(ctx, "c1", [(app, ["db"])])
    container(ctx, "plain")
    with pytest.raises(Conflict, match=r'network app has active endpoints \(name:"c1" id:"' + c1["id"][:12]):
        networks.rm(ctx, "app")
    assert networks.prune(ctx) == ["empty"]
    # predefined networks are never dangling (Docker's rule)
    assert [n["name"] for n in networks.ls(ctx, ["dangling=false"])] == ["app", "bridge", "host", "none"]
    state_dir = ctx.paths.container(c1["id"])
    import shutil
    shutil.rmtree(state_dir)  # the container removed: nothing else to update
    assert networks.prune(ctx) == ["app"]


def test_predefined_members(ctx):
    container(ctx, "default")
    container(ctx, "hosty", network="host")
    container(ctx, "nothing", network="none")
    app = networks.create(ctx, "app")
    container(ctx, "onapp", [(app, [])])
    names = {n: sorted(c["Name"] for c in networks.inspect(ctx, n)["Containers"].values())
             for n in ("bridge", "host", "none", "app")}
    assert names == {"bridge": ["default"], "host": ["hosty"], "none": ["nothing"], "app": ["onapp"]}


def test_connect_and_disconnect(ctx):
    networks.create(ctx, "app")
    nid = networks.find(ctx.paths, "app")["id"]
    c = container(ctx, "c")
    rec = networks.connect(ctx, "app", "c", ["db", "db", "store"])
    assert rec["spec"]["networks"] == [[nid, ["db", "store"]]]
    assert state.read(ctx.paths, c["id"])["spec"]["networks"] == [[nid, ["db", "store"]]]
    with pytest.raises(Conflict, match="^endpoint with name c already exists in network app$"):
        networks.connect(ctx, "app", "c")
    with pytest.raises(RootlessError, match="predefined network bridge"):
        networks.connect(ctx, "bridge", "c")
    with pytest.raises(ContainerNotFound):
        networks.connect(ctx, "app", "nope")
    with pytest.raises(NetworkNotFound):
        networks.connect(ctx, "nope", "c")
    networks.disconnect(ctx, "app", "c")
    assert state.read(ctx.paths, c["id"])["spec"]["networks"] == []
    with pytest.raises(RootlessError, match=f"container {c['id'][:12]} is not connected to network app"):
        networks.disconnect(ctx, "app", "c")
    assert networks.disconnect(ctx, "app", "gone", force=True) == {}


@pytest.mark.parametrize("network, message", [
    ("host", "sharing network namespace"), ("container:" + "a" * 64, "sharing network namespace"),
    ("none", r"private \(none\) mode"),
])
def test_connect_refuses_shared_and_private_modes(ctx, network, message):
    networks.create(ctx, "app")
    container(ctx, "c", network=network)
    with pytest.raises(Conflict, match=message):
        networks.connect(ctx, "app", "c")


# ---- Docker's JSON -------------------------------------------------------------------------------
def test_inspect_format(ctx):
    nid = networks.create(ctx, "app", labels={"k": "v"}, internal=True)
    running = container(ctx, "web", [(nid, ["www"])], running=True)
    stopped = container(ctx, "idle", [(nid, [])])
    got = networks.inspect(ctx, "app")
    assert list(got) == ["Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal",
                         "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"]
    assert (got["Name"], got["Id"], got["Scope"], got["Driver"], got["EnableIPv6"]) == (
        "app", nid, "local", "bridge", False)
    assert got["Created"].endswith("Z") and got["Created"][:4].isdigit()
    assert got["IPAM"] == {"Driver": "default", "Options": {}, "Config": []}
    assert (got["Internal"], got["Attachable"], got["Labels"], got["Options"]) == (True, False, {"k": "v"}, {})
    assert got["Containers"] == {
        running["id"]: {"Name": "web", "EndpointID": networks.endpoint_id(nid, running["id"]),
                        "MacAddress": "02:00:00:00:00:01", "IPv4Address": "10.0.2.100/24", "IPv6Address": ""},
        stopped["id"]: {"Name": "idle", "EndpointID": "", "MacAddress": "", "IPv4Address": "", "IPv6Address": ""},
    }
    bridge = networks.inspect(ctx, "bridge")
    assert bridge["IPAM"]["Config"] == [{"Subnet": "10.0.2.0/24", "Gateway": "10.0.2.2"}]
    assert networks.inspect(ctx, "none")["Driver"] == "null"


def test_container_inspect_shows_the_user_network(ctx):
    from rootless.engine import dockerview
    nid = networks.create(ctx, "app")
    rec = container(ctx, "web", [(nid, ["www"])], running=True)
    got = dockerview.inspect(rec, ctx.paths)
    assert got["HostConfig"]["NetworkMode"] == "app"
    nets = got["NetworkSettings"]["Networks"]
    assert list(nets) == ["app"]
    assert nets["app"]["NetworkID"] == nid and nets["app"]["Aliases"] == ["www"]
    assert nets["app"]["IPAddress"] == "10.0.2.100"
    assert nets["app"]["DNSNames"] == ["web", "www", rec["id"][:12]]
    plain = dockerview.inspect(container(ctx, "plain"), ctx.paths)
    assert plain["HostConfig"]["NetworkMode"] == "slirp4netns" and list(plain["NetworkSettings"]["Networks"]) == [
        "slirp4netns"]


# ---- run --network NAME ------------------------------------------------------------------------------
def test_resolve(ctx):
    nid = networks.create(ctx, "app")
    inner = networks.create(ctx, "inner", internal=True)
    got = networks.resolve(ctx, RunOptions(image="busybox", network="app", network_aliases=("db", "db", "x")))
    assert (got.network, got.networks) == ("slirp4netns", ((nid, ("db", "x")),))
    got = networks.resolve(ctx, RunOptions(image="busybox", network="inner"))
    assert (got.network, got.networks) == ("none", ((inner, ()),))
    for mode in ("slirp4netns", "slirp4netns:mtu=1500", "bridge", "host", "none", "container:x"):
        assert networks.resolve(ctx, RunOptions(image="busybox", network=mode)).network == mode
    assert networks.resolve(ctx, RunOptions(image="b", network=networks.predefined_id("host"))).network == "host"
    with pytest.raises(NetworkNotFound, match="^network nope not found$") as e:
        networks.resolve(ctx, RunOptions(image="busybox", network="nope"))
    assert e.value.exit_code == 125


def test_spec_fields():
    opts = RunOptions(image="busybox", network="slirp4netns", networks=(("n" * 64, ("db",)),))
    assert network_fields(opts, None)["networks"] == (("n" * 64, ["db"]),)
    with pytest.raises(UsageError, match="only supported for user-defined networks"):
        network_fields(RunOptions(image="busybox", network_aliases=("db",)), None)


def test_old_records_are_readable():
    d = ContainerSpec(id="c", name="n", image_id="i", image_name="b", layers=(), argv=("x",), env=(), user="",
                      workdir="/", hostname="h").to_json()
    del d["networks"]
    assert ContainerSpec.from_json(d).networks == ()
    d["networks"] = [["n" * 64, ["db", "x"]]]
    assert ContainerSpec.from_json(d).networks == (("n" * 64, ["db", "x"]),)


# ---- the links of a start ------------------------------------------------------------------------
def test_a_start_links_the_running_members(ctx):
    from rootless.runtime import network
    app = networks.create(ctx, "app")
    other = networks.create(ctx, "other")
    db = container(ctx, "db", [(app, ["database"]), (other, ["store"])], running=True)
    container(ctx, "stopped", [(app, [])])
    container(ctx, "elsewhere", [(other, [])], running=True)
    cache = container(ctx, "cache", [(app, [])], running=True, exposed=())
    me = container(ctx, "me", [(app, [])])
    spec = ContainerSpec.from_json(me["spec"])
    links = network._links(ctx, spec)
    assert [(lk.address, lk.alias, lk.cid, lk.aliases, lk.legacy, lk.ports) for lk in links] == [
        ("10.0.3.2", "db", db["id"], ("database",), False, ("8080/tcp",)),
        ("10.0.3.3", "cache", cache["id"], (), False, ()),
    ]
    assert links[0].door_dir == ctx.paths.run_dir(db["id"])
    from netstack import links as linkmod
    assert linkmod.hosts_entries(links) == [("10.0.3.2", f"db {db['id'][:12]} database"),
                                            ("10.0.3.3", f"cache {cache['id'][:12]}")]
    assert network.link_env(spec, network.NetPlan("slirp4netns", {}, links=links)) == []  # no link variables


def test_a_linked_member_gets_one_address_and_every_name(ctx):
    from rootless.runtime import network
    app = networks.create(ctx, "app")
    db = container(ctx, "db", [(app, ["database"])], running=True)
    me = container(ctx, "me", [(app, [])])
    spec = ContainerSpec.from_json(me["spec"])._replace(links=((db["id"], "sql"),))
    links = network._links(ctx, spec)
    assert [(lk.alias, lk.aliases, lk.legacy) for lk in links] == [("sql", ("database",), True)]
    env = network.link_env(spec, network.NetPlan("slirp4netns", {}, links=links))
    assert "SQL_PORT=tcp://10.0.3.2:8080" in env


def test_a_member_whose_keeper_died_is_skipped(ctx):
    from rootless.runtime import network
    app = networks.create(ctx, "app")
    dead = container(ctx, "dead", [(app, [])])
    state.update_state(ctx.paths, dead["id"], status="running", keeper=2 ** 22 + 1, keeper_start="1")
    me = container(ctx, "me", [(app, [])])
    assert network._links(ctx, ContainerSpec.from_json(me["spec"])) == []
    assert state.read(ctx.paths, dead["id"])["state"]["status"] == "exited"
