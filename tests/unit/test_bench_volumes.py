"""scripts/bench_volumes.py: the volume's 1 GB write is measured against the host writing into the
volume's own directory, in pairs whose order alternates (nothing is written: subprocess is faked)."""

import importlib.util
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "bench_volumes.py"
_spec = importlib.util.spec_from_file_location("bench_volumes", SCRIPT)
bench_volumes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_volumes)


def test_paired_ratio_is_the_median_of_the_pairs_ratios():
    assert bench_volumes.paired_ratio([2.0, 2.0, 3.0], [2.0, 4.0, 2.0]) == 1.0
    assert bench_volumes.paired_ratio([1.0, 1.0, 1.0, 1.0], [1.25, 1.25, 1.0, 1.0]) == 1.0
    assert bench_volumes.paired_ratio([], []) == 0.0


def test_the_volume_write_pairs_the_host_in_the_volumes_directory(monkeypatch):
    calls = []
    timed = iter(["200", "250", "240", "200", "220", "220", "230", "230"])  # centiseconds, in call order

    def fake_run(argv, **kw):
        calls.append(argv)
        out = "/store/volumes/benchvol/_data\n" if "inspect" in argv else ""
        if argv[-1].startswith("s=$("):
            out = next(timed) + "\n"
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(bench_volumes.subprocess, "run", fake_run)
    exec_argv = ["rootless", "exec", "volbench-volume", "sh", "-c"]
    res = bench_volumes.volume_write(["rootless"], {"E": "1"}, exec_argv, 4)
    writes = [c for c in calls if c[-1].startswith("s=$(")]
    sides = ["host" if c[0] == bench_volumes.BUSYBOX else "volume" for c in writes]
    assert sides == ["host", "volume", "volume", "host", "host", "volume", "volume", "host"]  # alternating
    targets = [c[-1].split("of=")[1].split()[0] for c in writes]
    host_dirs = {t for t, s in zip(targets, sides, strict=True) if s == "host"}
    assert host_dirs == {"/store/volumes/benchvol/_data/big"}  # the volume's own directory, not another
    assert {t for t, s in zip(targets, sides, strict=True) if s == "volume"} == {"/vol/big"}
    assert res["host s"] == [2.0, 2.0, 2.2, 2.3] and res["volume s"] == [2.5, 2.4, 2.2, 2.3]
    assert res["ratio"] == bench_volumes.paired_ratio(res["host s"], res["volume s"]) == 1.0
    # before each write its file is removed and the disk synced, on the same side
    for i, c in enumerate(calls):
        if c[-1].startswith("s=$("):
            assert calls[i - 1][-1].endswith("/big; sync") and calls[i - 1][0] == c[0]
