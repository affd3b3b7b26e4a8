#!/bin/sh
# Show a little about the environment this container runs in.
cat /etc/motd
echo
echo "id:        $(id)"
echo "hostname:  $(hostname)"
echo "processes: $(ls -d /proc/[0-9]* 2>/dev/null | wc -l)"
echo "kernel:    $(uname -sr)"
