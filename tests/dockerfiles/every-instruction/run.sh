#!/bin/sh
echo "entrypoint args: $*"
echo "user: $(id -u):$(id -g)"
