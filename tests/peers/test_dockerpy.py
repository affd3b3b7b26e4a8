"""A peer's suite: docker-py's own integration tests, unchanged, against ``rootless system service``.

``scripts/compat.py`` builds the stand-in images, serves them from a local registry, starts the
service (on tcp://127.0.0.1, as docker-py's CI does: docker-py opens a websocket, ``attach/ws``,
only to a tcp:// host) and runs the suite; this test fails on any failure not listed, with its reason, in
``dockerpy-expected-failures.txt``, and on a listed test that passes (the list must stay true). A
failure not listed is run once more (docker-py has tests that depend on timing); one that passes
then is reported as flaky, not counted as passed, and does not fail this test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GIVEN = os.environ.get("ROOTLESS_DOCKERPY_TESTS")  # CI names them: then they must be there
TESTS = Path(GIVEN or REPO.parent / "shared" / "peers" / "docker-py")


@pytest.mark.skipif(not GIVEN and not (TESTS / "tests" / "integration").is_dir(),
                    reason=f"docker-py's tests are not at {TESTS} (set ROOTLESS_DOCKERPY_TESTS)")
def test_docker_py_integration_suite(tmp_path):
    assert (TESTS / "tests" / "integration").is_dir(), f"ROOTLESS_DOCKERPY_TESTS={GIVEN}: no tests/integration there"
    summary = tmp_path / "summary.json"
    cp = subprocess.run([sys.executable, str(REPO / "scripts" / "compat.py"), "--tests", str(TESTS),
                         "--transport", "tcp", "--json", str(summary)],
                        capture_output=True, text=True, timeout=3600)
    tail = (cp.stdout + cp.stderr)[-6000:]
    assert summary.exists(), f"compat.py made no summary (exit {cp.returncode}):\n{tail}"
    result = json.loads(summary.read_text())
    print(f"docker-py: passed {result['passed']} of {result['total']}; passed only when run again: {result['flaky']}")
    assert not result["unexpected"], f"failures not in the expected list: {result['unexpected']}\n{tail}"
    assert not result["fixed"], f"listed as expected failures but passing (take them off): {result['fixed']}"
