"""The base every other folder stands on, importing nothing of the project outside this folder
(so that :mod:`layers`, :mod:`netstack` and everything above import it with no arrow pointing
up): errors and Docker's exit codes (``errors``), atomic files (``atomic``), lock files
(``locking``), the store's layout (``paths``), the one wrapper of ``subprocess`` (``proc``),
ctypes system calls (``syscalls``), phase marks (``timing``), the TOML configuration
(``config``), subordinate id maps (``idmap``), the parent-child message channel (``channel``),
forking into a user namespace (``userns``), Ubuntu's AppArmor restriction on it (``apparmor``),
libseccomp (``seccomp``) and value types whose fields go by name (``valuetype``).
"""
