#!/bin/sh
# Slurm Epilog (slurm.conf: Epilog=/path/to/slurm-epilog.sh; slurmd runs it as root on each node at
# a job's end): removes the private runtime directories that `rootless` made for the job when it
# had no XDG_RUNTIME_DIR, ${TMPDIR:-/tmp}/rootless-run-UID-jobID (docs/hpc.md). The temp dirs
# looked in: ROOTLESS_JOB_TMPDIRS (space-separated), else /tmp and /var/tmp. Never follows a
# link, never crosses into a mount.
[ -n "$SLURM_JOB_ID" ] && [ -n "$SLURM_JOB_UID" ] || exit 0
case "$SLURM_JOB_ID$SLURM_JOB_UID" in *[!0-9]*) exit 0 ;; esac
for base in ${ROOTLESS_JOB_TMPDIRS:-/tmp /var/tmp}; do
    dir="$base/rootless-run-$SLURM_JOB_UID-job$SLURM_JOB_ID"
    if [ -d "$dir" ] && [ ! -L "$dir" ]; then
        rm -rf --one-file-system -- "$dir" || true
    fi
done
exit 0
