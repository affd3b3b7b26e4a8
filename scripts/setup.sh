#!/usr/bin/env bash
# From a fresh Debian 12 / Ubuntu machine to a running rootless container, in one command.
#
#  1. host packages and settings, when root or passwordless sudo is available;
#     otherwise a list of what an administrator must do, and we carry on with what exists;
#  2. a virtualenv in .venv with rootless (and the test tools) installed;
#  3. a real container from the embedded demo image (no network needed).
set -uo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(python3 python3-venv python3-dev gcc libcap-dev uidmap fuse-overlayfs fuse3 slirp4netns
          busybox-static iproute2 docker-registry openssl mmdebstrap)
# Test-only: Docker Compose for the API tests, without the docker.io it recommends (no daemon here);
# pass for docker-py's credential-store tests (scripts/compat.py)
TEST_PACKAGES=(docker-compose pass)
TARGET_USER=${SUDO_USER:-$(id -un)}
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
warn() { printf '\033[1;33msetup: warning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31msetup: error:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
    else return 99
    fi
}

missing_packages() {
    local p out=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out+=("$p")
    done
    echo "${out[@]}"
}

has_subids() { grep -qE "^($1|$(id -u "$1")):" /etc/subuid 2>/dev/null && grep -qE "^($1|$(id -u "$1")):" /etc/subgid 2>/dev/null; }

next_subid_start() {  # after every range in use, so ranges never overlap
    awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' /etc/subuid /etc/subgid 2>/dev/null
}

host_setup() {
    local todo=() missing
    missing=$(missing_packages)
    if [ -n "$missing" ]; then
        say "installing host packages: $missing"
        if as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; then :
        else todo+=("sudo apt-get install -y $missing"); fi
    fi
    local p
    for p in "${TEST_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null ||
            todo+=("sudo apt-get install --no-install-recommends $p   # for the tests only")
    done
    for dev in /dev/fuse /dev/net/tun; do
        if [ -e "$dev" ] && ! [ -r "$dev" -a -w "$dev" ]; then
            say "making $dev usable by unprivileged users (mode 0666, as on most distributions)"
            as_root chmod 0666 "$dev" || todo+=("sudo chmod 0666 $dev")
        fi
    done
    if [ "$TARGET_USER" != root ] && ! has_subids "$TARGET_USER"; then
        local start; start=$(next_subid_start)
        say "giving $TARGET_USER subordinate ids $start-$((start + 65535))"
        as_root usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" \
            "$TARGET_USER" || todo+=("sudo usermod --add-subuids $start-$((start + 65535)) --add-subgids $start-$((start + 65535)) $TARGET_USER")
    fi
    if [ ${#todo[@]} -gt 0 ]; then
        warn "no root or passwordless sudo here; ask an administrator to run:"
        printf '    %s\n' "${todo[@]}" >&2
        warn "carrying on with what this machine has (\`rootless info\` tells what degrades)"
    fi
}

python_setup() {
    command -v python3 >/dev/null || die "python3 is missing: ask an administrator to install python3 python3-venv"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 is needed ($(python3 -V))"
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv"
        python3 -m venv .venv || die "python3 -m venv failed: install python3-venv"
    fi
    say "installing rootless and the test tools into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    # an editable install: a plain path in a .pth file (pyproject's package-dir), no import hook
    .venv/bin/python -m pip install -q -e '.[dev]' ||
        die "pip install failed (python-prctl needs gcc, python3-dev and libcap-dev)"
}

# file_from_deb PACKAGE PATH DEST [APT OPTIONS...]: fetch PACKAGE with apt (not installed), put
# its file PATH at DEST
file_from_deb() {
    local pkg=$1 path=$2 dest=$3; shift 3
    local tmp rc=1; tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get -q "$@" download "$pkg" >/dev/null 2>&1) &&
       dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x" && [ -x "$tmp/x/$path" ]; then
        install -D -m 0755 "$tmp/x/$path" "$dest" && rc=0
    fi
    rm -rf "$tmp"
    return $rc
}

docker_client() {
    # The API tests drive `rootless system service` with Debian's docker CLI: the client alone,
    # unpacked from the docker.io package into .venv/bin (nothing is installed, no daemon).
    [ -x .venv/bin/docker ] && return
    if file_from_deb docker.io usr/bin/docker .venv/bin/docker; then
        say "docker CLI (client only, from Debian's docker.io) in .venv/bin for the API tests"
    else
        warn "could not fetch Debian's docker client (apt-get download docker.io): the API tests will fail"
    fi
}

credential_helper() {
    # docker-py's credential-store tests (scripts/compat.py) drive docker-credential-pass, as its
    # own CI does: the helper alone, unpacked from Debian's package into .venv/bin.
    [ -x .venv/bin/docker-credential-pass ] && return
    file_from_deb golang-docker-credential-helpers usr/bin/docker-credential-pass .venv/bin/docker-credential-pass ||
        warn "could not fetch docker-credential-pass (golang-docker-credential-helpers): docker-py's store tests will fail"
}

compose_v2() {
    # Compose v2 for the API tests, as a docker CLI plugin: Debian packages it from Debian 13 on
    # (its only dependency is libc6 >= 2.34). The package is fetched with apt from this machine's
    # Debian mirror, signature-checked against the Debian archive keyring, and only unpacked.
    local plugin=.venv/libexec/docker/cli-plugins/docker-compose
    [ -x "$plugin" ] && return
    local work mirror; work=$(mktemp -d)
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
             awk '$1 ~ /\/debian\/$/ && $2 !~ /-/ {print $1; exit}')
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror} trixie main" >"$work/sources.list"
    local o=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" -o Dir::State::status=/dev/null
             -o Debug::NoLocking=1)
    if [ -n "$mirror" ] && [ -r /usr/share/keyrings/debian-archive-keyring.gpg ] &&
       apt-get -q "${o[@]}" update >/dev/null 2>&1 &&
       file_from_deb docker-compose usr/libexec/docker/cli-plugins/docker-compose "$plugin" "${o[@]}"; then
        say "Compose v2 (Debian 13's docker-compose, as a docker CLI plugin) in .venv/libexec for the API tests"
    else
        warn "could not fetch Compose v2 from a Debian mirror (Debian 13's docker-compose): its API test will fail"
    fi
    rm -rf "$work"
}

demo() {
    local rl=.venv/bin/rootless
    say "host diagnosis (rootless info):"
    "$rl" info | sed 's/^/    /'
    say "loading the embedded demo image and running it:"
    "$rl" load -i rootless/data/demo-image.tar.gz || die "loading the demo image failed"
    if ! "$rl" run --rm rootless-demo; then
        # Without a usable /dev/net/tun (no root to fix it) the default network cannot start.
        warn "the demo with the default network (slirp4netns) failed; trying without a network"
        "$rl" run --rm --network none rootless-demo || die "the demo container failed: see \`rootless info\` and README's troubleshooting"
    fi
    say "done. Try: .venv/bin/rootless run --rm -it rootless-demo sh"
    say "the test suite: .venv/bin/just test"
}

host_setup
python_setup
docker_client
compose_v2
credential_helper
demo
