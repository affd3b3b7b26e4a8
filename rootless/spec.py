"""What a container is: its options from the command line and the spec built from them.

``build`` is pure: the image's config plus the options give a frozen
``ContainerSpec``, which the record stores and the launcher executes.
"""

from __future__ import annotations

import os
from collections import namedtuple

from rootless.errors import UsageError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETWORKS = ("none", "host")


# Value types on the start-up path are namedtuples: importing dataclasses costs ~8 ms per command.
RunOptions = namedtuple(
    "RunOptions",
    "image command entrypoint env env_files workdir user hostname name network init rm interactive tty",
    defaults=((), None, (), (), None, None, None, None, "none", False, False, False, False))


class ContainerSpec(namedtuple(
        "ContainerSpec",
        "id name image_id image_name layers argv env user workdir hostname "
        "network init tty interactive remove labels stop_signal entrypoint",
        defaults=("none", False, False, False, False, None, "SIGTERM", None))):
    """What a container runs. ``layers``: diff ids, bottom first; ``argv``: entrypoint + cmd;
    ``entrypoint``: the part of argv that is the entrypoint (Docker's Config.Entrypoint; None when
    unknown); ``env``: KEY=VALUE (HOME is added from the user's passwd entry at start);
    ``labels``: a dict (None becomes {})."""

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls, *args, **kwargs)
        return self if self.labels is not None else self._replace(labels={})

    def to_json(self) -> dict:
        d = self._asdict()
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_json(cls, d: dict) -> ContainerSpec:
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in cls._fields}
        return cls(**kw)


def parse_env_file(text: str, path: str, host_env: dict[str, str]) -> list[str]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.lstrip()  # Docker keeps a value's trailing spaces
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            line = line.rstrip()
        out.extend(merge_env_arg(line, host_env, f"{path}:{n}"))
    return out


def merge_env_arg(arg: str, host_env: dict[str, str], where: str = "-e") -> list[str]:
    """``K=V`` as is; ``K`` takes the host's value or is dropped (Docker's rule)."""
    key, eq, _ = arg.partition("=")
    if not key or key != key.strip() or " " in key:
        raise UsageError(f"invalid environment variable {arg!r} ({where})")
    if eq:
        return [arg]
    return [f"{key}={host_env[key]}"] if key in host_env else []


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """Later values win; order of first appearance is kept."""
    env: dict[str, str] = {}
    for item in list(base) + list(overrides):
        k, _, v = item.partition("=")
        env[k] = v
    return [f"{k}={v}" for k, v in env.items()]


def split_command(image_cfg: dict, command: tuple[str, ...], entrypoint: str | None) -> tuple[list, list]:
    """(entrypoint, cmd) by Docker's rule: --entrypoint replaces the image's entrypoint and drops its CMD."""
    if entrypoint is not None:
        return ([entrypoint] if entrypoint else []), list(command)
    return list(image_cfg.get("Entrypoint") or []), list(command) or list(image_cfg.get("Cmd") or [])


def command_line(image_cfg: dict, command: tuple[str, ...], entrypoint: str | None) -> list[str]:
    """Docker's rule: --entrypoint replaces the image's entrypoint and drops its CMD."""
    if entrypoint is not None:
        ep = [entrypoint] if entrypoint else []
        cmd = list(command)
    else:
        ep = list(image_cfg.get("Entrypoint") or [])
        cmd = list(command) or list(image_cfg.get("Cmd") or [])
    argv = ep + cmd
    if not argv:
        raise UsageError("no command specified", "give a command after the image name")
    return argv


def build(opts: RunOptions, cid: str, name: str, image: dict, image_config: dict, image_name: str,
          host_env: dict[str, str], env_file_texts: dict[str, str]) -> ContainerSpec:
    cfg = image_config.get("config") or {}
    if opts.network not in NETWORKS:
        raise UsageError(f"network {opts.network!r} not supported yet", "use --network none or --network host")
    workdir = opts.workdir if opts.workdir is not None else (cfg.get("WorkingDir") or "/")
    if not workdir.startswith("/"):
        raise UsageError(f"the working directory {workdir!r} is invalid, it needs to be an absolute path")
    hostname = opts.hostname or cid[:12]
    env = list(cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    extra = []
    for path in opts.env_files:
        extra += parse_env_file(env_file_texts[path], path, host_env)
    for arg in opts.env:
        extra += merge_env_arg(arg, host_env)
    env = merge_env([f"HOSTNAME={hostname}"] + env, extra)
    return ContainerSpec(
        id=cid, name=name, image_id=image["id"], image_name=image_name,
        layers=tuple(lr["diff_id"] for lr in image["layers"]),
        argv=tuple(command_line(cfg, opts.command, opts.entrypoint)),
        env=tuple(env),
        user=opts.user if opts.user is not None else (cfg.get("User") or ""),
        workdir=os.path.normpath(workdir),
        hostname=hostname, network=opts.network, init=opts.init, tty=opts.tty,
        interactive=opts.interactive, remove=opts.rm,
        labels=dict(cfg.get("Labels") or {}),
        stop_signal=cfg.get("StopSignal") or "SIGTERM",
        entrypoint=tuple(split_command(cfg, opts.command, opts.entrypoint)[0]),
    )
