# rootless: recipes. `just` comes from PyPI (rust-just) into .venv by scripts/setup.sh.
set shell := ["bash", "-euo", "pipefail", "-c"]

venv := justfile_directory() / ".venv"
py := venv / "bin" / "python"

# List the recipes.
default:
    @just --list

# Install host packages (root/sudo) or list them, create .venv, install rootless, run the demo.
setup:
    scripts/setup.sh

# Run a real container from the embedded demo image (no network needed).
demo:
    {{venv}}/bin/rootless load -i rootless/data/demo-image.tar.gz
    {{venv}}/bin/rootless run --rm rootless-demo

# The whole test suite (as an unprivileged user: the namespace tests refuse root).
test *ARGS:
    {{py}} -m pytest -n 2 {{ARGS}}

# Benchmarks beside the references this machine has (unshare+chroot floor, podman).
bench *ARGS:
    {{py}} scripts/bench.py {{ARGS}}

# docker-py's integration suite against rootless system service (or: just compat --against podman).
compat *ARGS:
    {{py}} scripts/compat.py {{ARGS}}

# Resource limits for real: tests/vm in the cgroup v2 guest of ../shared/vm (a few minutes, emulated).
vm-test *ARGS:
    PYTHON={{py}} scripts/vm-test.sh {{ARGS}}

# Style, types and the import direction between packages.
lint:
    {{venv}}/bin/ruff check --no-cache rootless layers netstack scripts tests
    {{venv}}/bin/mypy  # rootless/base, layers/, rootless/runtime, rootless/engine and rootless/api: [tool.mypy] in pyproject.toml
    {{py}} -m pytest -q -p no:randomly tests/unit/test_layering.py

# Build the test images into a directory.
images out="out/images":
    {{py}} scripts/mkimages.py --out {{out}}

# Rebuild the embedded demo image: `rootless build` of examples/demo with the host's static busybox, no network.
embed-demo:
    mkdir -p out
    tar -c -C examples/demo . -C /bin busybox | {{venv}}/bin/rootless build --network none -q -t rootless-demo -
    {{venv}}/bin/rootless save -o out/demo-image.tar rootless-demo
    gzip -n -9 -c out/demo-image.tar > rootless/data/demo-image.tar.gz
    rm out/demo-image.tar
