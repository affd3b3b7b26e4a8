#!/usr/bin/env bash
# Let the installed `rootless` use user namespaces on Ubuntu 23.10 and later, where
# kernel.apparmor_restrict_unprivileged_userns=1 leaves the user namespaces of unconfined programs
# without capabilities (the id maps and mounts of every container then fail with EPERM).
#
# Run once, as root:   sudo scripts/install-apparmor-profile.sh [options] [PATH]
#   PATH               the rootless entry point (default: `command -v rootless`; sudo resets PATH,
#                      so for a virtualenv pass it: sudo scripts/... "$(command -v rootless)")
#   --print            only print the profile (no root needed, nothing changes)
#   --uninstall        unload and remove the profile written for PATH
#   --interpreter      also attach the profile to the Python interpreter (see below; not advised)
#
# It writes /etc/apparmor.d/NAME (NAME: "rootless" and the path, dotted) from
# scripts/apparmor/rootless.profile and loads it with apparmor_parser -r. `rootless info` then shows
# "apparmor userns ok ... runs under its AppArmor profile NAME".
#
# Scripts and AppArmor: `rootless` is a console script (a "#!" line naming the virtualenv's
# python). A profile attaches at exec by the real path (symlinks resolved) of the file execve()
# was given, before the kernel turns to the "#!" interpreter; the interpreter then runs under it,
# and so do the programs it execs that have no profile of their own (flags=(unconfined) keeps the
# profile across such execs, as pip's "#!/bin/sh" trampoline for long paths needs). So the profile
# names the resolved script, not python: naming python would give user namespaces to every Python
# program on the machine. Only `python -m rootless` bypasses the script; --interpreter covers it,
# at that price.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
template=$here/apparmor/rootless.profile
mode=install
interpreter=no
target=

die() { printf 'install-apparmor-profile: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'install-apparmor-profile: %s\n' "$*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
        --print) mode=print ;;
        --uninstall) mode=uninstall ;;
        --interpreter) interpreter=yes ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        --) shift; target=${1:-}; break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) target=$1 ;;
    esac
    shift
done

if [ -z "$target" ]; then
    target=$(command -v rootless) ||
        die "rootless is not on PATH (sudo resets it): pass the entry point, e.g. sudo $0 \"\$(command -v rootless)\""
fi
if [ "$mode" = uninstall ] && [ ! -e "$target" ]; then
    path=$(readlink -m -- "$target")  # rootless already removed: its profile may remain
else
    [ -f "$target" ] || die "$target is not a file"
    path=$(readlink -f -- "$target")  # AppArmor matches the real path, never a symlink's
fi

# The path goes into the profile unquoted: refuse characters AppArmor would read as globs or syntax.
safe_path() { [[ $1 =~ ^/[A-Za-z0-9._+/-]+$ ]]; }
safe_path "$path" || die "$path: only letters, digits and ._+-/ are handled; install rootless under a plain path"
name="rootless.$(printf '%s' "${path#/}" | tr / .)"
file=/etc/apparmor.d/$name

need_root() {
    [ "$(id -u)" = 0 ] || die "must be run as root: sudo $0 $*"
    command -v apparmor_parser >/dev/null 2>&1 || die "apparmor_parser not found: is AppArmor installed (package apparmor)?"
}

if [ "$mode" = uninstall ]; then
    need_root --uninstall "$path"
    if [ ! -e "$file" ]; then
        say "no profile for $path ($file does not exist)"
        exit 0
    fi
    apparmor_parser -R "$file" 2>/dev/null || say "the profile was not loaded; removing the file"
    rm -f -- "$file"
    say "removed $file"
    exit 0
fi

[ -r "$template" ] || die "$template is missing (run this script from the rootless source tree)"

# The template filled in for one attachment (its "# " notes left out); body-only: without the
# preamble (abi, tunables), for a second profile in the same file.
render() {  # NAME PATH [body-only]
    local out
    out=$(sed -e '/^# /d' -e '/^#$/d' -e "s|@NAME@|$1|g" -e "s|@PATH@|$2|g" "$template")
    if [ "${3:-}" = body-only ]; then printf '%s\n' "$out" | sed -n '/^profile /,$p'; else printf '%s\n' "$out"; fi
}

# The Python interpreter that runs the script $1, resolved: "#!/abs/python", "#!/usr/bin/env
# python3", or pip's trampoline for long paths ("#!/bin/sh", then a line "'''exec' /abs/python ...").
interpreter_of() {
    local line py rest
    line=$(head -n 1 -- "$1")
    [[ $line == '#!'* ]] || die "--interpreter: $1 is not a script"
    read -r py rest <<<"${line#??}"
    case ${py##*/} in
        env) py=$(command -v "${rest%% *}") || die "--interpreter: ${rest%% *} not found" ;;
        sh) py=$(sed -n '2{s/^.*exec'"'"' *"\{0,1\}\([^" ]*\).*$/\1/p}' -- "$1") ;;
    esac
    [ -n "$py" ] && py=$(readlink -f -- "$py")
    # never attach to sh, env or anything else that is not Python
    [[ ${py##*/} == python* ]] || die "--interpreter: no Python interpreter found for $1 (got '$py')"
    printf '%s\n' "$py"
}

profile() {
    printf '# Written by rootless scripts/install-apparmor-profile.sh for %s\n' "$path"
    if [ "$(head -c 2 -- "$path")" = '#!' ]; then
        printf '# It is a script (%s): the profile attaches to the script itself, the file\n' \
            "$(head -n 1 -- "$path")"
        printf '# the kernel executes first, and its interpreter runs under it.\n'
    fi
    render "$name" "$path"
    if [ -n "$py" ]; then
        printf '\n# --interpreter, for "python -m rootless": every program run by this interpreter\n'
        printf '# (%s) may create user namespaces.\n' "$py"
        render "$name.python" "$py" body-only
    fi
}

py=
if [ "$interpreter" = yes ]; then
    py=$(interpreter_of "$path")
    safe_path "$py" || die "$py: only letters, digits and ._+-/ are handled"
fi
text=$(profile)

if [ "$mode" = print ]; then
    printf '%s\n' "$text"
    exit 0
fi

need_root "$path"
[ -e /etc/apparmor.d/abi/4.0 ] ||
    die "this AppArmor has no abi/4.0 (userns rules): it predates the restriction, nothing to do"
tmp=$(mktemp "$file.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
printf '%s\n' "$text" >"$tmp"
chmod 0644 "$tmp"
mv -f -- "$tmp" "$file"
trap - EXIT
if ! apparmor_parser -r "$file"; then
    rm -f -- "$file"  # a broken file would be refused again at every boot
    die "apparmor_parser refused the profile (see above); nothing installed"
fi
say "loaded $file: $path may now create user namespaces (check with: rootless info)"
