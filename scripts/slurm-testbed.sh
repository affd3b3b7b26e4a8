#!/usr/bin/env bash
# A real multi-node Slurm cluster on this one machine, for tests/cluster (docs/hpc.md, "The test bed").
#
#   scripts/slurm-testbed.sh up      as root: packages, munge, slurmctld and the nodes; waits until idle
#   scripts/slurm-testbed.sh down    as root: stops everything `up` started, leaves nothing running
#   scripts/slurm-testbed.sh status  "up" (exit 0) or "down" (exit 1)
#
# The shape (Debian 12's slurm-wlm 22.05 and munge):
# - a bridge rlslurm0 with 10.77.0.1/24 on the host; slurmctld runs in the host's network namespace
#   under the host name `rlctl` (its own UTS namespace), munged on the host;
# - nodes node1 and node2 (10.77.0.11, .12), each slurmd in its own network namespace (a veth pair
#   into the bridge), UTS namespace (its host name) and mount namespace, where:
#     /tmp      is /var/tmp/rlnode/NODE/tmp of the host (node-local, 1777);
#     /var/tmp  is /var/tmp/rlnode/NODE/vartmp (node-local: rootless relocates stores there);
#     /dev/shm  is a tmpfs of its own; /run/user an empty tmpfs (a compute node has no user session);
#     /home     is the host's /home (shared, as NFS would be);
#   a checkout under /tmp (CI runs from a copy there) is bound back at the same path in each node's /tmp,
#   so the venv's programs and the tests' paths are the same everywhere;
# - slurm.conf and oci.conf in /etc/slurm (oci.conf's runtime: the checkout's .venv/bin/rootless-runc);
#   no cgroup plugin (this host's cgroups are hybrid v1): proctrack/linuxproc, task/none;
# - the state file /run/rootless-slurm-testbed (KEY=VALUE lines) that tests/cluster reads.
set -euo pipefail

STATE=/run/rootless-slurm-testbed
RUNDIR=/run/rootless-slurm
BRIDGE=rlslurm0
NET=10.77.0
NODES=(node1 node2)
CTL=rlctl
CONF=/etc/slurm
NODEBASE=/var/tmp/rlnode
HOSTS_TAG="# rootless-slurm-testbed"
repo=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "slurm-testbed: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "run as root (the test bed creates namespaces, a bridge and daemons)"; }

node_ip() { echo "$NET.$((10 + ${1#node}))"; }

packages() {
    local missing=()
    for cmd in slurmctld:slurmctld slurmd:slurmd srun:slurm-client munged:munge; do
        command -v "${cmd%%:*}" >/dev/null 2>&1 || missing+=("${cmd#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "slurm-testbed: installing ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
    fi
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        # one key, made once
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    if ! munge -n </dev/null >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged
        for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
        munge -n </dev/null >/dev/null 2>&1 || die "munged did not start"
        echo started >"$RUNDIR/munged.started"  # ours: down stops it
    fi
}

write_conf() {
    local cpus=4 runc="$repo/.venv/bin/rootless-runc"
    install -d -m 0755 "$CONF"
    cat >"$CONF/slurm.conf" <<EOF
# Written by $repo/scripts/slurm-testbed.sh (the rootless test bed): do not edit.
ClusterName=rltest
SlurmctldHost=$CTL($NET.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmctldPidFile=$RUNDIR/slurmctld.pid
SlurmdPidFile=$RUNDIR/slurmd-%n.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
# no cgroup plugin works on this hybrid cgroup v1 host: processes are tracked by their parentage
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=30
InactiveLimit=0
MinJobAge=60
SlurmctldTimeout=30
SlurmdTimeout=60
TmpFS=/tmp
Epilog=$repo/scripts/slurm-epilog.sh
NodeName=node[1-2] NodeAddr=$NET.1[1-2] CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=node[1-2] Default=YES MaxTime=INFINITE State=UP
EOF
    # Slurm's OCI interface (22.05): RunTimeRun (one call per task) and the query/kill/delete calls;
    # the container's id names the node, user, job, step and task, so tasks never collide.
    local id="%n.%u.%j.%s.%t" root="--root /tmp/rootless-runc-%u"
    cat >"$CONF/oci.conf" <<EOF
# Written by $repo/scripts/slurm-testbed.sh: srun --container=BUNDLE runs through rootless-runc.
RunTimeQuery="$runc $root state $id"
RunTimeKill="$runc $root kill -a $id SIGTERM"
RunTimeDelete="$runc $root delete --force $id"
RunTimeRun="$runc $root run --bundle %b $id"
EOF
    chmod 0644 "$CONF/slurm.conf" "$CONF/oci.conf"
}

hosts_add() {
    hosts_remove
    {
        echo "$NET.1 $CTL $HOSTS_TAG"
        for n in "${NODES[@]}"; do echo "$(node_ip "$n") $n $HOSTS_TAG"; done
    } >>/etc/hosts
}

hosts_remove() {
    # /etc/hosts may be a bind mount: rewrite it in place, never replace the file
    if grep -q "$HOSTS_TAG" /etc/hosts; then
        local kept
        kept=$(grep -v "$HOSTS_TAG" /etc/hosts)
        printf '%s\n' "$kept" >/etc/hosts
    fi
}

network_up() {
    ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
    ip addr replace "$NET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for n in "${NODES[@]}"; do
        local ns="rlslurm-$n" veth="rls-$n"
        ip netns list | grep -qw "$ns" || ip netns add "$ns"
        if ! ip link show "$veth" >/dev/null 2>&1; then
            ip link add "$veth" type veth peer name eth0 netns "$ns"
        fi
        ip link set "$veth" master "$BRIDGE" up
        ip -n "$ns" addr replace "$(node_ip "$n")/24" dev eth0
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route replace default via "$NET.1"
    done
}

network_down() {
    for n in "${NODES[@]}"; do
        ip link del "rls-$n" 2>/dev/null || true
        ip netns del "rlslurm-$n" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_ctld() {
    install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm
    alive "$RUNDIR/slurmctld.wrapper" && return 0
    # its own UTS namespace: the controller's host name is $CTL whatever this machine is called
    setsid unshare --uts --fork sh -c "hostname $CTL && exec /usr/sbin/slurmctld -D -i" \
        </dev/null >>/var/log/slurm/slurmctld.out 2>&1 &
    echo $! >"$RUNDIR/slurmctld.wrapper"
}

# The node's program: runs in its network namespace (nsenter) and new UTS and mount namespaces.
node_main() {
    local n=$1 base="$NODEBASE/$1"
    hostname "$n"
    mount --make-rprivate /
    if [ -n "${REPO_UNDER_TMP:-}" ]; then  # the checkout stays reachable at its path
        mkdir -p "$base/tmp/$REPO_UNDER_TMP"
        mount --bind "/tmp/$REPO_UNDER_TMP" "$base/tmp/$REPO_UNDER_TMP"
    fi
    mount --rbind "$base/tmp" /tmp
    mount --bind "$base/vartmp" /var/tmp
    mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
    if [ -d /run/user ]; then mount -t tmpfs -o mode=0755 user /run/user; fi
    install -d -m 0755 "/var/spool/slurmd/$n"
    exec /usr/sbin/slurmd -D -N "$n"
}

start_nodes() {
    local under=""
    case "$repo" in /tmp/*) under=${repo#/tmp/} ;; esac
    for n in "${NODES[@]}"; do
        alive "$RUNDIR/$n.wrapper" && continue
        local base="$NODEBASE/$n"
        install -d -m 0755 "$NODEBASE" "$base"
        install -d -m 1777 "$base/tmp" "$base/vartmp"
        # nsenter, not `ip netns exec`: that remounts /sys, and slurmd wants the host's /sys/fs/cgroup
        REPO_UNDER_TMP=$under setsid nsenter --net="/run/netns/rlslurm-$n" unshare --uts --mount --fork \
            "$repo/scripts/slurm-testbed.sh" _node "$n" </dev/null >>"/var/log/slurm/slurmd-$n.out" 2>&1 &
        echo $! >"$RUNDIR/$n.wrapper"
    done
}

wait_idle() {
    local deadline=$((SECONDS + 90)) states
    while [ $SECONDS -lt $deadline ]; do
        states=$(sinfo -h -N -o '%N %t' 2>/dev/null | sort -u || true)
        if [ "$(echo "$states" | grep -cE '^node[0-9]+ idle$')" = "${#NODES[@]}" ]; then
            return 0
        fi
        # a node that was down when the controller last ran comes back with `resume`
        for n in "${NODES[@]}"; do
            if echo "$states" | grep -qE "^$n (down|drain|drng)"; then
                scontrol update nodename="$n" state=resume 2>/dev/null || true
            fi
        done
        sleep 1
    done
    sinfo -N >&2 || true
    die "the nodes did not become idle in 90 s (see /var/log/slurm/)"
}

write_state() {
    local tmp="$STATE.tmp"
    {
        echo "bridge=$BRIDGE"
        echo "host_address=$NET.1"
        echo "controller=$CTL"
        echo "nodes=${NODES[*]}"
        for n in "${NODES[@]}"; do
            echo "node_${n}_address=$(node_ip "$n")"
            echo "node_${n}_tmp=$NODEBASE/$n/tmp"
        done
        echo "repo=$repo"
        echo "oci_conf=$CONF/oci.conf"
    } >"$tmp"
    chmod 0644 "$tmp"
    mv "$tmp" "$STATE"
}

kill_tree_of() {  # a wrapper's pid file: the process and everything below it
    local file=$1
    [ -s "$file" ] || { rm -f "$file"; return 0; }
    local pid
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        local all=("$pid") i=0
        while [ $i -lt ${#all[@]} ]; do
            all+=($(pgrep -P "${all[$i]}" || true))
            i=$((i + 1))
        done
        kill -TERM "${all[@]}" 2>/dev/null || true
        for _ in $(seq 50); do
            local left=0
            for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
            [ $left = 0 ] && break
            sleep 0.1
        done
        kill -KILL "${all[@]}" 2>/dev/null || true
    fi
    rm -f "$file"
}

up() {
    need_root
    install -d -m 0755 "$RUNDIR"
    packages
    start_munge
    write_conf
    hosts_add
    network_up
    start_ctld
    for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
    scontrol ping 2>/dev/null | grep -q UP || die "slurmctld did not answer (see /var/log/slurm/slurmctld.log)"
    start_nodes
    wait_idle
    write_state
    echo "slurm-testbed: up ($(sinfo -h -N -o '%N' | sort -u | tr '\n' ' '))"
}

down() {
    need_root
    rm -f "$STATE"
    # the jobs' processes on the nodes first (slurmstepd and below), then the daemons
    for n in "${NODES[@]}"; do
        if ip netns list 2>/dev/null | grep -qw "rlslurm-$n"; then
            for pid in $(ip netns pids "rlslurm-$n" 2>/dev/null); do
                [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmd ] || kill -KILL "$pid" 2>/dev/null || true
            done
        fi
        kill_tree_of "$RUNDIR/$n.wrapper"
    done
    kill_tree_of "$RUNDIR/slurmctld.wrapper"
    # anything still in a node's network namespace (a process that left its parent)
    for n in "${NODES[@]}"; do
        for pid in $(ip netns pids "rlslurm-$n" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    if [ -f "$RUNDIR/munged.started" ]; then
        local mpid
        mpid=$(pgrep -x -u munge munged || true)
        [ -n "$mpid" ] && kill "$mpid" 2>/dev/null || true
        rm -f "$RUNDIR/munged.started"
    fi
    network_down
    hosts_remove
    rm -rf "$NODEBASE"
    rm -rf "$RUNDIR"
    echo "slurm-testbed: down"
}

status() {
    if [ -f "$STATE" ] && sinfo -h -N -o '%N %t' 2>/dev/null | grep -qE '^node[0-9]+ (idle|mix|alloc)'; then
        echo up
        return 0
    fi
    echo down
    return 1
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    _node) node_main "$2" ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
