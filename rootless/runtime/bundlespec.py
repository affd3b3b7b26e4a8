"""An OCI bundle's ``config.json`` (runtime-spec 1.0.2) from an image's config: pure data.

What ``rootless bundle`` writes beside the rootfs (``rootless.engine.bundle``), so that any OCI
runtime (``rootless oci``, runc, crun, Slurm's ``srun --container``) runs the image as ``docker
run`` would: Docker's command line (Entrypoint + Cmd), environment, working directory, user (the
image's ``User`` resolved in the rootfs' /etc/passwd and /etc/group), capability set, masked and
read-only paths; the mounts and namespaces of ``runc spec --rootless`` (no network namespace
unless asked: the host's network, which HPC jobs want), and the id maps of the user's store.
"""

from __future__ import annotations

from rootless.base.errors import UsageError
from rootless.runtime import mountplan, security, spec, users

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Sequence

    from rootless.base.idmap import IdMapping

OCI_VERSION = "1.0.2"
NOFILE = 1048576  # Docker's containers inherit dockerd's RLIMIT_NOFILE (systemd's LimitNOFILE=infinity)
NETWORKS = ("host", "none")


def process_args(image_cfg: dict, command: Sequence[str] = ()) -> list[str]:
    """Docker's rule: Entrypoint + Cmd, a command given replacing Cmd; none at all is a one-line error."""
    entrypoint, cmd = spec.split_command(image_cfg, command, None)
    argv = entrypoint + cmd
    if not argv:
        raise UsageError("no command specified: the image has no Entrypoint or Cmd",
                         "give one after the directory: rootless bundle IMAGE DIR COMMAND [ARG...]")
    return argv


def environment(image_cfg: dict, home: str) -> list[str]:
    """The image's Env, with Docker's PATH when it has none and HOME from passwd when unset."""
    env = list(image_cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={spec.DEFAULT_PATH}")
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    return env


def working_dir(image_cfg: dict) -> str:
    cwd = image_cfg.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise UsageError(f"the image's working directory {cwd!r} is invalid, it needs to be an absolute path")
    return cwd


def process_user(image_cfg: dict, passwd: str, group: str) -> users.User:
    """The image's ``User`` (name or uid, ``:group`` or gid) as numbers, through the rootfs'
    /etc/passwd and /etc/group (Docker's rules: a name must be there, a number need not)."""
    text = image_cfg.get("User") or ""
    users.check(text)
    return users.resolve(text, passwd, group)


def _mappings(ranges) -> list[dict]:
    return [{"containerID": r.inside, "hostID": r.outside, "size": r.count} for r in ranges]


def mounts(single_uid: bool) -> list[dict]:
    """``runc spec --rootless``'s mounts, kept runnable rootless: devpts takes gid 5 (tty) only
    where a subordinate map has it; /sys is an rbind of the host's (a user namespace without its
    own network namespace may not mount sysfs); no cgroup mount (a hybrid host has none to give)."""
    pts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not single_uid:
        pts.append("gid=5")
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": pts},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "none", "source": "/sys",
         "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]},
    ]


def config(image_config: dict, mapping: IdMapping, user: users.User, *, ref_name: str, image_id: str,
           digest: str = "", hostname: str = "", network: str = "host", nofile: int = NOFILE,
           command: Sequence[str] = ()) -> dict:
    """The whole ``config.json``. ``user``: :func:`process_user`'s; ``network``: host (no network
    namespace) or none (one of its own, loopback only); ``hostname``: the UTS namespace's name
    (none: it keeps the name of the node it runs on, as a job's ranks want); ``command``: replaces
    the image's Cmd; ``nofile``: RLIMIT_NOFILE (Docker's, at most the hard limit the caller has:
    a rootless runtime cannot raise it)."""
    if network not in NETWORKS:
        raise UsageError(f"--network {network!r} is not supported for a bundle", "use host (the default) or none")
    cfg = image_config.get("config") or {}
    caps = [f"CAP_{c}" for c in security.capabilities()]
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user")]
    if network == "none":
        namespaces.insert(0, {"type": "network"})
    annotations = {str(k): str(v) for k, v in (cfg.get("Labels") or {}).items()}
    annotations["org.opencontainers.image.ref.name"] = ref_name
    annotations["io.rootless.image.id"] = image_id
    if digest:
        annotations["io.rootless.image.digest"] = digest
    process_user: dict[str, object] = {"uid": user.uid, "gid": user.gid}
    extra = [g for g in user.groups if g != user.gid]
    if extra:
        process_user["additionalGids"] = extra
    process = {
        "terminal": False,
        "user": process_user,
        "args": process_args(cfg, command),
        "env": environment(cfg, user.home),
        "cwd": working_dir(cfg),
        "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        "noNewPrivileges": False,
    }
    out = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": "rootfs", "readonly": False},
        "mounts": mounts(mapping.mode == "single"),
        "annotations": annotations,
        "linux": {
            "uidMappings": _mappings(mapping.uids),
            "gidMappings": _mappings(mapping.gids),
            "namespaces": namespaces,
            "maskedPaths": list(mountplan.MASKED),
            "readonlyPaths": list(mountplan.READONLY),
        },
    }
    if hostname:
        out["hostname"] = hostname
    return out
