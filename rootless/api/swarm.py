"""Swarm mode's endpoints, answered as a Docker node that is in no swarm answers them.

rootless runs one user's containers on one host: it never joins a swarm. Docker outside a swarm
says so with 503 and fixed texts, and clients count on them: docker-py's ``leave_swarm(force=True)``
takes a 503 as "nothing to leave", the docker CLI prints the text. ``init`` and ``join``, which
Docker would honour, are refused with a 503 that says rootless has no swarm mode. ``GET /info``
shows the node as ``inactive`` (:data:`INACTIVE`).
"""

from __future__ import annotations

TYPE_CHECKING = False  # annotations only: nothing more is imported at start-up
if TYPE_CHECKING:
    from rootless.api.http import Request
    from rootless.engine.context import Context

UNAVAILABLE = 503  # Docker's status for a swarm operation this node cannot do now

# Docker's texts, which its CLI prints and clients match on
NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
                 'this node to swarm and try again.')
NOT_IN_A_SWARM = "This node is not part of a swarm"
NO_SWARM_MODE = ("rootless has no swarm mode: it runs one user's containers on this host; "
                 "use a Docker engine for a swarm, or Compose for several containers here")

# GET /info's Swarm object for a node outside any swarm
INACTIVE = {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
            "Error": "", "RemoteManagers": None}

# (method, path) of every swarm endpoint -> its handler; {rest*} is the remainder of the path
_NOUNS = ("services", "nodes", "tasks", "secrets", "configs")
ROUTES = [
    ("GET", "/swarm", "swarm:not_a_manager"),
    ("POST", "/swarm/init", "swarm:no_swarm_mode"),
    ("POST", "/swarm/join", "swarm:no_swarm_mode"),
    ("POST", "/swarm/leave", "swarm:leave"),
    ("POST", "/swarm/update", "swarm:not_a_manager"),
    ("POST", "/swarm/unlock", "swarm:not_a_manager"),
    ("GET", "/swarm/unlockkey", "swarm:not_a_manager"),
] + [(method, path, "swarm:not_a_manager")
     for noun in _NOUNS for path in (f"/{noun}", f"/{noun}/{{rest*}}") for method in ("GET", "POST", "DELETE")]


def not_a_manager(ctx: Context, req: Request, **_):
    """Services, nodes, tasks, secrets, configs and the swarm itself: there is no swarm here."""
    return UNAVAILABLE, {"message": NOT_A_MANAGER}


def leave(ctx: Context, req: Request, **_):
    """Leaving, forced or not: there is nothing to leave (docker-py's forced leave accepts it)."""
    return UNAVAILABLE, {"message": NOT_IN_A_SWARM}


def no_swarm_mode(ctx: Context, req: Request, **_):
    """``init`` and ``join``: refused, since rootless has no swarm mode."""
    return UNAVAILABLE, {"message": NO_SWARM_MODE}
