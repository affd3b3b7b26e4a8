"""The ``pull`` group of ``scripts/bench.py``: pull + unpack of a ~200 MB, 5-layer image.

The image is made here: a busybox base layer and four layers of generated files (half random,
half repetitive, so gzip roughly halves them), gzip-compressed, about 200 MB of blobs in all,
uploaded through the registry API to a ``docker-registry`` on 127.0.0.1 (plain HTTP). Each
tool then pulls it into a fresh store on the same filesystem, in the same run:

- ``rootless pull`` (blobs verified, layers unpacked in the user namespace);
- ``podman pull`` (its own storage, native overlay), when podman works here;
- ``skopeo copy`` to an OCI directory, then every layer untarred (the "download + unpack" floor
  of a simple tool), when skopeo is installed.

Wall time (median) and peak memory (the largest resident set of the process tree, from
``wait4``) are reported. Before each measured command the benchmark writes and removes a scratch
file (``WARM_MB``), so that every tool finds recently freed memory for its page cache: on a
virtual machine whose balloon reports free pages back to the host (as here), the first touch of
a returned page costs about 2.5 ms per MB, which would otherwise charge a pull 0.5 to 1.5 s at
random, by whichever tool happened to get those pages, and measure the hypervisor instead of the
tools. Targets (issue 5): at most 0.5x podman's time, no slower than skopeo
copy + unpack, peak memory under 100 MB.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request

LAYERS = 4
FILES_PER_LAYER = 96
FILE_SIZE = 1 << 20  # 96 x 1 MiB per layer, half random: ~50 MB of blob per layer after gzip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    def __init__(self, base: str):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        os.makedirs(base, exist_ok=True)
        conf = os.path.join(base, "config.yml")
        with open(conf, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n"
                    f"  filesystem:\n    rootdirectory: {base}/data\nhttp:\n  addr: {self.host}\n")
        self.proc = subprocess.Popen([shutil.which("docker-registry") or "/usr/bin/docker-registry", "serve", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("docker-registry did not start") from None
                time.sleep(0.05)

    def api(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None):
        req = urllib.request.Request(f"http://{self.host}{path}", data=data, method=method, headers=headers or {})
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.headers, r.read()

    def blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        headers, _ = self.api("POST", f"/v2/{repo}/blobs/uploads/")
        loc = headers["Location"].split(self.host, 1)[-1]
        self.api("PUT", loc + ("&" if "?" in loc else "?") + f"digest={digest}", data,
                 {"Content-Type": "application/octet-stream"})
        return digest

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _layer(seed: int) -> tuple[bytes, str]:
    """(gzip blob, diff id) of a layer of generated files."""
    rnd = random.Random(seed)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo(f"data{seed}")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1700000000
        tar.addfile(d)
        for i in range(FILES_PER_LAYER):
            half = FILE_SIZE // 2
            body = rnd.randbytes(half) + bytes([i % 251]) * (FILE_SIZE - half)
            info = tarfile.TarInfo(f"data{seed}/file{i:03d}")
            info.size, info.mode, info.mtime = len(body), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(body))
    data = raw.getvalue()
    return gzip.compress(data, compresslevel=1, mtime=0), "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(reg: Registry, base_layer: bytes, base_config: dict, repo: str = "bench/big") -> tuple[str, int]:
    """Upload the 5-layer image; (reference, total blob bytes)."""
    blobs = [(gzip.compress(base_layer, compresslevel=6, mtime=0), "sha256:" + hashlib.sha256(base_layer).hexdigest())]
    blobs += [_layer(i) for i in range(LAYERS)]
    layers = []
    for blob, _diff in blobs:
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": reg.blob(repo, blob),
                       "size": len(blob)})
    config = dict(base_config, rootfs={"type": "layers", "diff_ids": [d for _b, d in blobs]}, history=[])
    cbytes = json.dumps(config).encode()
    cdigest = reg.blob(repo, cbytes)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest,
                           "size": len(cbytes)}, "layers": layers}
    reg.api("PUT", f"/v2/{repo}/manifests/latest", json.dumps(manifest).encode(),
            {"Content-Type": manifest["mediaType"]})
    return f"{reg.host}/{repo}:latest", sum(len(b) for b, _ in blobs) + len(cbytes)


# Peak memory: wait4's ru_maxrss of a process counts what it had before exec, so the command is
# started by this small helper (not by the benchmark, whose memory would be counted too).
_SPAWN = (r"""
import json, os, sys
null = os.open("/dev/null", os.O_RDWR)
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ,
                     file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1)])
_, status, usage = os.wait4(pid, 0)
os.write(int(sys.argv[1]), json.dumps({"code": os.waitstatus_to_exitcode(status), """
          r""""maxrss_kb": usage.ru_maxrss}).encode())
""")


WARM_MB = 1500


def warm(scratch_dir: str) -> None:
    """Free recently touched memory for the next command's page cache (see above), then write
    everything dirty, so that the previous run's writeback does not happen during this one."""
    path = os.path.join(scratch_dir, "warm.scratch")
    block = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(WARM_MB):
            f.write(block)
    os.unlink(path)
    os.sync()


def timed(argv: list[str], env: dict | None = None, scratch_dir: str = "/tmp") -> tuple[float, float]:
    """(seconds, peak RSS in MB of the command and the processes it waited for) of one run."""
    import sys
    warm(scratch_dir)
    r, w = os.pipe()
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", _SPAWN, str(w), shutil.which(argv[0]) or argv[0], *argv[1:]],
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         pass_fds=(w,))
    os.close(w)
    err = p.stderr.read().decode(errors="replace")
    p.wait()
    elapsed = time.perf_counter() - t0
    with os.fdopen(r) as f:
        result = json.loads(f.read() or '{"code": -1, "maxrss_kb": 0}')
    if result["code"] != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit code {result['code']}: {err.strip()[-500:]}")
    return elapsed, result["maxrss_kb"] / 1024


def skopeo_and_unpack(skopeo: str, ref: str, work: str) -> None:
    """skopeo copy to an OCI layout, then untar every layer into one tree (what a simple tool does)."""
    oci = os.path.join(work, "oci")
    authfile = os.path.join(work, "auth.json")  # its own, empty: the user's are not read
    with open(authfile, "w") as f:
        f.write('{"auths": {}}')
    subprocess.run([skopeo, "copy", "--quiet", "--authfile", authfile, "--src-tls-verify=false", f"docker://{ref}",
                    f"oci:{oci}:latest"], check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    with open(os.path.join(oci, "index.json")) as f:
        mdigest = json.load(f)["manifests"][0]["digest"]
    with open(os.path.join(oci, "blobs", "sha256", mdigest[7:])) as f:
        manifest = json.load(f)
    rootfs = os.path.join(work, "rootfs")
    os.makedirs(rootfs)
    for layer in manifest["layers"]:
        subprocess.run(["tar", "-xzf", os.path.join(oci, "blobs", "sha256", layer["digest"][7:]), "-C", rootfs,
                        "--no-same-owner"], check=True)


def median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def bench_pull(rootless: list[str], env: dict, pm, tmp: str, rounds: int, base_layer: bytes, base_config: dict,
               remove_tree) -> dict:
    reg = Registry(os.path.join(tmp, "pull-registry"))
    results: dict = {}
    try:
        ref, total = make_image(reg, base_layer, base_config)
        cfg = os.path.join(tmp, "pull-config.toml")
        with open(cfg, "w") as f:
            f.write(f'[registries]\ninsecure = ["{reg.host}"]\n')
        runs: dict[str, list[tuple[float, float]]] = {"rootless pull": [], "podman pull": [], "skopeo copy + untar": []}
        skopeo = shutil.which("skopeo")
        for i in range(rounds):
            root = os.path.join(tmp, f"pull-rl-{i}")
            e = dict(env, ROOTLESS_ROOT=root, ROOTLESS_CONFIG=cfg)
            runs["rootless pull"].append(timed(rootless + ["pull", "-q", ref], e, tmp))
            subprocess.run(rootless + ["system", "reset", "-f"], env=e, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            if pm:
                proot = os.path.join(tmp, f"pull-pm-{i}")
                argv = [pm.argv[0], "--root", proot, "--runroot", pm.runroot + f"-pull{i}", "--storage-driver",
                        "overlay", "pull", "-q", "--tls-verify=false", ref]
                runs["podman pull"].append(timed(argv, pm.env, tmp))
                subprocess.run([pm.argv[0], "--root", proot, "--runroot", pm.runroot + f"-pull{i}", "unshare", "rm",
                                "-rf", proot], env=pm.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False)
            if skopeo:
                work = os.path.join(tmp, f"pull-sk-{i}")
                os.makedirs(work)
                warm(tmp)
                t0 = time.perf_counter()
                skopeo_and_unpack(skopeo, ref, work)
                runs["skopeo copy + untar"].append((time.perf_counter() - t0, 0.0))
                remove_tree(work)
        for name, samples in runs.items():
            if samples:
                results[name] = {"seconds": median([s for s, _ in samples]), "peak MB": max(m for _, m in samples),
                                 "samples": [s for s, _ in samples]}
    finally:
        reg.stop()
    out = {"bytes": total, "layers": LAYERS + 1, "rounds": rounds, "results": results, "targets": {}}
    rl = results["rootless pull"]["seconds"]
    if "podman pull" in results:
        out["targets"]["rootless / podman"] = {"value": rl / results["podman pull"]["seconds"], "target": 0.5}
    if "skopeo copy + untar" in results:
        out["targets"]["rootless / skopeo + untar"] = {"value": rl / results["skopeo copy + untar"]["seconds"],
                                                       "target": 1.0}
    out["targets"]["rootless peak MB"] = {"value": results["rootless pull"]["peak MB"], "target": 100.0}
    return out


def report(pull: dict, podman_note: str) -> None:
    print(f"pull + unpack: a {pull['layers']}-layer image, {pull['bytes'] / 1e6:.0f} MB of blobs, from a local "
          f"registry; median of {pull['rounds']}")
    for name, r in pull["results"].items():
        mem = f"{r['peak MB']:.0f} MB peak" if r["peak MB"] else ""
        print(f"  {name:22} {r['seconds']:7.2f} s  {mem}")
    if podman_note:
        print(f"  podman: not measured ({podman_note})")
    for name, t in pull["targets"].items():
        ok = t["value"] <= t["target"]
        print(f"  {name}: {t['value']:.2f} (target <= {t['target']:g}) {'ok' if ok else 'MISSED'}")
