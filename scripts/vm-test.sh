#!/usr/bin/env bash
# The cgroup v2 tests (tests/vm) in the laptop-like guest of ../shared/vm: systemd 252, pure
# cgroup v2, an unprivileged user with a delegated subtree (cpu, memory, pids). This host's
# cgroups are hybrid, so limits can only be shown to hold there.
#
#   scripts/vm-test.sh [PYTEST ARGS...]
#
# Builds the guest image first when it is missing (root or passwordless sudo needed for that
# one step), installs this checkout in the guest from wheels made here (the guest has no
# network) and runs `pytest tests/vm` as the guest's user. Exit code: pytest's (125: the VM).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
vm=
for d in "${ROOTLESS_VM_SCRIPTS:-}" "$repo/../shared/vm" /work/shared/vm; do
    if [ -n "$d" ] && [ -x "$d/run-in-vm.sh" ]; then vm=$(cd "$d" && pwd); break; fi
done
[ -n "$vm" ] || { echo "vm-test: the guest's scripts (../shared/vm) are not here; set ROOTLESS_VM_SCRIPTS" >&2; exit 2; }
export VM_DIR=${VM_DIR:-/var/tmp/rootless-vm}
# the guest's packages beyond the base: a venv, busybox for the test images, the kernel NFS
# server (tests/vm/test_nfs.py exports a directory over loopback)
pkgs="python3-venv busybox-static nfs-kernel-server"
if [ ! -f "$VM_DIR/rootfs.img" ] || ! grep -qx "extra_pkgs=$pkgs" "$VM_DIR/image-info.txt" 2>/dev/null; then
    echo "vm-test: building the guest image (about a minute)" >&2
    if [ "$(id -u)" = 0 ]; then EXTRA_PKGS="$pkgs" "$vm/build-image.sh" >&2
    elif sudo -n true 2>/dev/null; then sudo env VM_DIR="$VM_DIR" EXTRA_PKGS="$pkgs" "$vm/build-image.sh" >&2
    else echo "vm-test: the guest image is missing or old: sudo EXTRA_PKGS='$pkgs' $vm/build-image.sh" >&2; exit 2
    fi
fi
py=${PYTHON:-$repo/.venv/bin/python}
[ -x "$py" ] || py=python3
share=$(mktemp -d /tmp/rootless-vmshare.XXXXXX)
trap 'rm -rf "$share"' EXIT
(cd "$repo" && { git ls-files -co --exclude-standard 2>/dev/null || find . -path ./.venv -prune -o -type f -print; } \
    | tar -cf - -T -) | (mkdir "$share/repo" && tar -xf - -C "$share/repo")
"$py" -m pip wheel -q -w "$share/wheels" "$share/repo[dev]" 2>&1 | grep -v "is ignored: it is neither" >&2 || true
cp "$(readlink -f /bin/busybox)" "$share/busybox"
cat > "$share/run.sh" <<'GUEST'
#!/bin/bash
set -e
python3 -m venv /tmp/v
/tmp/v/bin/pip install -q --no-index --find-links /mnt/share/wheels "rootless[dev]"
cp -r /mnt/share/repo /tmp/repo && cd /tmp/repo
export PATH=/tmp/v/bin:$PATH ROOTLESS_VM_TEST=1 ROOTLESS_TEST_BUSYBOX=/mnt/share/busybox
# an NFS export of the kernel server, mounted over loopback, with a directory of this user's
if [ -x /usr/sbin/exportfs ]; then
    sudo sh -ec 'mkdir -p /srv/nfs/home /mnt/nfs; chown "$1:$2" /srv/nfs/home
        echo "/srv/nfs 127.0.0.1(rw,sync,no_subtree_check,insecure)" > /etc/exports
        systemctl start nfs-server; exportfs -ra
        mount -t nfs -o vers=4.2 127.0.0.1:/srv/nfs /mnt/nfs' sh "$(id -u)" "$(id -g)"
    export ROOTLESS_TEST_NFS=/mnt/nfs/home  # root_squash, as usual: the user's directory is made on the server side
fi
exec /tmp/v/bin/python -m pytest -q -p no:cacheprovider -p no:randomly tests/vm "$@"
GUEST
chmod +x "$share/run.sh"
chmod -R a+rX "$share"
start=$(date +%s)
rc=0
"$vm/run-in-vm.sh" --share "$share" --timeout "${VM_TIMEOUT:-1500}" "$share/run.sh" "$@" || rc=$?
echo "vm-test: $(( $(date +%s) - start )) s in the guest (boot included), exit $rc" >&2
exit $rc
