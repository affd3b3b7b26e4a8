"""The shared network's pure parts: who joins it, the addresses given out, and a container's id
map written in the holder's user namespace's ids (rootless/runtime/sharednet.py, base/idmap.py)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest

from rootless.base import idmap
from rootless.base.errors import RootlessError
from rootless.base.idmap import IdMapping, Range
from rootless.runtime import netholder, sharednet

SUBID = IdMapping("subid", (Range(0, 1000, 1), Range(1, 100000, 65536)), (Range(0, 1000, 1), Range(1, 100000, 65536)))


@pytest.mark.parametrize(("options", "env", "joins"), [
    ({}, {}, True),
    ({"allow_host_loopback": False, "port_handler": "builtin", "mtu": 65520, "enable_ipv6": False}, {}, True),
    ({}, {"ROOTLESS_SHARED_NETWORK": "0"}, False),
    ({}, {"SLURM_JOB_ID": "42"}, False),  # a holder would outlive the job step
    ({"allow_host_loopback": True}, {}, False),
    ({"port_handler": "slirp4netns"}, {}, False),
    ({"mtu": 1500}, {}, False),
    ({"enable_ipv6": True}, {}, False),
    ({"cidr": "10.9.0.0/24"}, {}, False),
])
def test_who_joins_the_shared_network(options, env, joins):
    assert sharednet.usable(options, env) is joins


def test_the_map_in_the_outer_namespace_ids():
    assert idmap.nested(SUBID, SUBID) == IdMapping("subid", (Range(0, 0, 1), Range(1, 1, 65536)),
                                                   (Range(0, 0, 1), Range(1, 1, 65536)))
    kept = idmap.keep_id(SUBID, 1000, 1000)  # the user's own id at 1000 inside
    assert idmap.nested(kept, SUBID).uids == (Range(0, 1, 1000), Range(1000, 0, 1), Range(1001, 1001, 64536))
    single = IdMapping("single", (Range(0, 1000, 1),), (Range(0, 1000, 1),))
    assert idmap.nested(single, single).uids == (Range(0, 0, 1),)
    split = IdMapping("subid", (Range(0, 1000, 1), Range(1, 100000, 10), Range(11, 300000, 10)), SUBID.gids)
    assert idmap.nested(IdMapping("subid", (Range(5, 100008, 2), Range(7, 300000, 3)), SUBID.gids), split).uids \
        == (Range(5, 9, 2), Range(7, 11, 3))
    # a range of the container's across two of the outer namespace's
    assert idmap.nested(IdMapping("subid", (Range(0, 100000, 20),), SUBID.gids), IdMapping(
        "subid", (Range(0, 1000, 1), Range(1, 100000, 10), Range(11, 100010, 10)), SUBID.gids)).uids \
        == (Range(0, 1, 10), Range(10, 11, 10))
    with pytest.raises(RootlessError, match="uid 200000 is not in the shared network's user namespace"):
        idmap.nested(IdMapping("subid", (Range(0, 200000, 1),), SUBID.gids), SUBID)


def _lease_dir(tmp_path) -> str:
    where = tmp_path / "sharednet"
    (where / "leases").mkdir(parents=True)
    return str(where)


def test_addresses_from_100_up_and_a_dead_holders_again(tmp_path):
    where = _lease_dir(tmp_path)
    assert sharednet._allocate(where) == "10.0.2.100"
    assert sharednet._allocate(where) == "10.0.2.101"  # .100 is this live process's
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open(os.path.join(where, "leases", "10.0.2.100"), "w") as f:
        f.write(f"{dead.pid} 12345\n")
    assert sharednet._allocate(where) == "10.0.2.100"  # its holder has gone
    assert netholder.live_leases(where) == 2
    with open(os.path.join(where, "leases", "10.0.2.101"), "w") as f:
        f.write("garbage")
    assert netholder.live_leases(where) == 1


def test_every_address_taken_is_a_clear_error(tmp_path, monkeypatch):
    where = _lease_dir(tmp_path)
    monkeypatch.setattr(sharednet, "ORDER", (100, 101))
    sharednet._allocate(where)
    sharednet._allocate(where)
    with pytest.raises(RootlessError, match=r"no free address \(2 containers are on it\)"):
        sharednet._allocate(where)


def test_release_frees_only_an_address_no_keeper_took(tmp_path):
    where = _lease_dir(tmp_path)
    lease = sharednet.Lease(where, 1, "1", 3, SUBID, sharednet._allocate(where))
    sharednet.release(lease)
    assert not os.path.exists(lease.path)
    lease = sharednet.Lease(where, 1, "1", 3, SUBID, sharednet._allocate(where))
    with open(lease.path, "w") as f:
        f.write("1 1\n")  # taken over by a keeper (pid 1 here)
    sharednet.release(lease)
    assert os.path.exists(lease.path)


def test_a_lease_travels_to_the_warm_forker_without_its_joiner(tmp_path):
    lease = sharednet.Lease(str(tmp_path), 7, "99", 3, SUBID, "10.0.2.100")
    lease.joiner = object()  # the keeper's own, never pickled
    back = pickle.loads(pickle.dumps(lease))
    assert (back.holder, back.holder_start, back.bridge, back.outer, back.ip, back.joiner) == \
        (7, "99", 3, SUBID, "10.0.2.100", None)


def test_a_full_shared_network_gives_the_container_its_own_slirp4netns(tmp_path, monkeypatch):
    from rootless.base.paths import Paths
    monkeypatch.setattr(sharednet, "ORDER", ())
    monkeypatch.setattr(sharednet, "_holder", lambda where: {"pid": 1, "start": "1", "bridge": 3,
                                                             "mapping": ["subid", SUBID.uids, SUBID.gids]})
    said = []
    paths = Paths(str(tmp_path / "store"), str(tmp_path / "run"))
    assert sharednet.lease(paths, SUBID, None, said.append) is None
    assert said == ["the shared network has no free address (0 containers are on it): this container gets a "
                    "slirp4netns of its own"]
    monkeypatch.setattr(sharednet, "ORDER", (100,))
    lease = sharednet.lease(paths, SUBID, None, said.append)
    assert (lease.ip, lease.holder, lease.outer) == ("10.0.2.100", 1, SUBID)
