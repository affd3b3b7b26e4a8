"""``rootless oci`` and ``rootless-runc``: runc's command line over rootless' runtime, for Slurm's
``oci.conf``, conmon and other OCI callers. Parse, one call of ``rootless.engine.ocirt``, print.

Every failure is one line on stderr (and in ``--log``) and exit code 1, as runc's; an attached
``run`` exits with the container's code.
"""

from __future__ import annotations

import os
import sys

USAGE = """\
usage: rootless-runc [GLOBAL OPTIONS] COMMAND [OPTIONS] ID
       rootless oci  [GLOBAL OPTIONS] COMMAND [OPTIONS] ID

An OCI runtime (runc's command line) that runs bundles with rootless' runtime, without root.

Commands:
  create   [--bundle|-b DIR] [--pid-file F] [--console-socket S] [--no-pivot] [--no-new-keyring]
           [--preserve-fds N] ID           set up the container; its process waits for `start`
  start    ID                              run the created container's process
  run      [--bundle|-b DIR] [--pid-file F] [--detach|-d] [--console-socket S] ID
                                           create and start; attached, wait and exit with its code
  state    ID                              the runtime-spec's state JSON
  kill     [--all|-a] ID [SIGNAL]          send SIGNAL (default SIGTERM) to its process (all of them)
  delete   [--force|-f] ID                 free everything it holds (--force: a running one too)
  list     [--format table|json] [-q]      the containers of the state directory (also: ps)

Global options:
  --root DIR              the state directory (default $XDG_RUNTIME_DIR/rootless-oci, else
                          /tmp/rootless-oci-UID); not rootless' image store
  --log FILE              also append errors to FILE
  --log-format text|json  the format of --log's lines
  --rootless true|false|auto   accepted (false: refused, it would need root)
  --systemd-cgroup        accepted (a warning where no cgroup is delegated)
  --debug                 more detail on errors
"""

# each command's options: name -> (takes a value, the key)
_COMMON = {"bundle": (True, "bundle"), "b": (True, "bundle"), "pid-file": (True, "pid_file"),
           "console-socket": (True, "console_socket"), "no-pivot": (False, None), "no-new-keyring": (False, None),
           "preserve-fds": (True, "preserve_fds")}
OPTIONS = {
    "create": _COMMON,
    "run": {**_COMMON, "detach": (False, "detach"), "d": (False, "detach"), "keep": (False, None),
            "no-subreaper": (False, None)},
    "start": {}, "state": {},
    "kill": {"all": (False, "all"), "a": (False, "all")},
    "delete": {"force": (False, "force"), "f": (False, "force")},
    "list": {"format": (True, "format"), "f": (True, "format"), "quiet": (False, "quiet"), "q": (False, "quiet")},
}
OPTIONS["ps"] = OPTIONS["list"]
GLOBALS = {"root": (True, "root"), "log": (True, "log"), "log-format": (True, "log_format"),
           "rootless": (True, "rootless"), "systemd-cgroup": (False, "systemd_cgroup"), "debug": (False, "debug"),
           "criu": (True, None)}


class _Usage(Exception):
    pass


def _parse(args: list[str], table: dict, stop_at_word: bool) -> tuple[dict, list[str]]:
    """Options of ``table`` (``--x=v``, ``--x v``, ``-x``, and Go's ``-x=v``); the words left."""
    opts: dict = {}
    words: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            words += args[i + 1:]
            break
        if a.startswith("-") and a != "-" and not (words and stop_at_word):
            name, eq, value = a.lstrip("-").partition("=")
            if name in ("h", "help"):
                raise _Usage("help")
            if name not in table:
                raise _Usage(f"unknown option {a.partition('=')[0]!r}")
            takes, key = table[name]
            if takes and not eq:
                i += 1
                if i >= len(args):
                    raise _Usage(f"option {a!r} needs a value")
                value = args[i]
            elif not takes and eq:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise _Usage(f"option --{name} takes no value")
                value = "" if value.lower() in ("false", "0") else "1"
            if key:
                opts[key] = value if takes else (value != "" if eq else True)
        else:
            words.append(a)
            if stop_at_word:
                words += args[i + 1:]
                break
        i += 1
    return opts, words


class _Log:
    """``--log``/``--log-format``: errors appended there too (runc's text or JSON lines)."""

    def __init__(self, path: str | None, fmt: str):
        self.path, self.fmt = path, fmt

    def write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        import time
        t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.fmt == "json":
            import json
            line = json.dumps({"level": level, "msg": msg, "time": t})
        else:
            line = f'time="{t}" level={level} msg="{msg}"'
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass


def main(argv: list[str] | None = None, prog: str = "rootless oci") -> int:
    argv = sys.argv[1:] if argv is None else argv
    log = _Log(None, "text")
    debug = False
    try:
        gopts, rest = _parse(argv, GLOBALS, stop_at_word=True)
        log = _Log(gopts.get("log"), gopts.get("log_format") or "text")
        debug = bool(gopts.get("debug"))
        if log.fmt not in ("text", "json"):
            raise _Usage(f"invalid --log-format {log.fmt!r} (text or json)")
        if not rest:
            raise _Usage("help")
        command, args = rest[0], rest[1:]
        if command == "help":
            raise _Usage("help")
        if command not in OPTIONS:
            raise _Usage(f"unknown command {command!r}")
        opts, words = _parse(args, OPTIONS[command], stop_at_word=False)
        return _dispatch(gopts, command, opts, words, log)
    except _Usage as e:
        if str(e) == "help":
            sys.stdout.write(USAGE)
            return 0
        return _fail(prog, str(e), f"see '{prog} --help'", log)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - the boundary: one line, runc's code
        from rootless.base.errors import RootlessError
        if isinstance(e, RootlessError):
            return _fail(prog, e.message, e.hint, log)
        if debug:
            raise
        return _fail(prog, f"{type(e).__name__}: {e}", "run again with --debug for the details", log)


def _fail(prog: str, message: str, hint: str | None, log: _Log) -> int:
    message = " ".join(message.splitlines())
    print(f"{prog}: error: {message}", file=sys.stderr)
    if hint:
        print(f"{prog}: hint: {hint}", file=sys.stderr)
    log.write("error", message)
    return 1


def _dispatch(gopts: dict, command: str, opts: dict, words: list[str], log: _Log) -> int:
    from rootless.base.errors import UsageError
    rootless = (gopts.get("rootless") or "auto").lower()
    if rootless not in ("true", "false", "auto"):
        raise _Usage(f"invalid --rootless {rootless!r} (true, false or auto)")
    if rootless == "false" and os.getuid() != 0:
        raise UsageError("--rootless=false would need root: this runtime runs rootless only",
                         "give --rootless=true or auto (or leave it out)")

    def warn(message: str) -> None:
        print(f"rootless-runc: warning: {message}", file=sys.stderr)
        log.write("warning", message)
    from rootless.engine import ocirt
    rt = ocirt.Runtime(gopts.get("root"), warn)
    if gopts.get("systemd_cgroup"):
        from rootless.runtime import cgroups
        if cgroups.detect().delegated is None:
            warn("--systemd-cgroup: no cgroup is delegated to you; the container stays in the caller's cgroup")
    if command in ("list", "ps"):
        return _list(rt, opts, words)
    if command == "kill":
        if len(words) not in (1, 2):
            raise _Usage("kill takes ID [SIGNAL]")
        rt.kill(words[0], ocirt.parse_signal(words[1] if len(words) == 2 else "TERM"), bool(opts.get("all")))
        return 0
    if len(words) != 1:
        raise _Usage(f"{command} takes one container ID" + (f", not {len(words)} words" if words else ""))
    cid = words[0]
    if command in ("create", "run"):
        if opts.get("preserve_fds") not in (None, "0"):
            raise UsageError("--preserve-fds is not supported", "pass only stdin, stdout and stderr")
        attached = command == "run" and not opts.get("detach")
        code = rt.create(cid, opts.get("bundle") or ".", opts.get("pid_file"), opts.get("console_socket"),
                         attached=attached, started=command == "run")
        return code if attached and code is not None else 0
    if command == "start":
        rt.start(cid)
    elif command == "state":
        import json
        print(json.dumps(rt.state(cid), indent=2))
    elif command == "delete":
        rt.delete(cid, bool(opts.get("force")))
    return 0


def _list(rt, opts: dict, words: list[str]) -> int:
    if words:
        raise _Usage("list takes no arguments")
    items = rt.list()
    fmt = opts.get("format") or "table"
    if opts.get("quiet"):
        for s in items:
            print(s["id"])
    elif fmt == "json":
        import json
        print(json.dumps(items))
    elif fmt == "table":
        print(f"{'ID':<24}{'PID':<10}{'STATUS':<10}BUNDLE")
        for s in items:
            print(f"{s['id']:<24}{s['pid']:<10}{s['status']:<10}{s['bundle']}")
    else:
        raise _Usage(f"invalid --format {fmt!r} (table or json)")
    return 0
