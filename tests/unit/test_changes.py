"""layers.changes: a writable layer (or a whole tree) against the image's layers, as ``docker
diff`` lists it. Deletions here are fuse-overlayfs's ``.wh.NAME`` files and opaque directories
its ``.wh..wh..opq`` marker (a 0/0 device needs root); the e2e tests cover the kernel's."""

from __future__ import annotations

import os
import shutil

from layers.changes import ADDED, CHANGED, DELETED, from_tree, from_upper


def _tree(root, files: dict[str, str | None]) -> str:
    """Files (text) and directories (None) under ``root``."""
    for rel, text in files.items():
        path = os.path.join(root, rel)
        if text is None:
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
    return str(root)


def test_upper_against_two_layers(tmp_path):
    base = _tree(tmp_path / "base", {"bin/ls": "ls", "bin/sh": "sh", "etc/passwd": "root", "opt/a/x": "1",
                                     "opt/a/y": "2", "proc": None, "gone/inner": "i"})
    top = _tree(tmp_path / "top", {"etc/group": "wheel", "gone/.wh.inner": ""})  # the image deletes gone/inner
    upper = _tree(tmp_path / "upper", {
        "bin/.wh.ls": "",                       # rm /bin/ls
        "etc/passwd": "root\nme",               # changed
        "etc/hosts": "",                        # a bare mount point: left out
        "etc/group": "wheel\nme",               # changed (from the top layer)
        "opt/a/.wh..wh..opq": "", "opt/a/z": "3",  # rm -rf /opt/a/*; touch /opt/a/z
        "new/deep/file": "n",                   # added, parents too
        "gone/.wh.inner": "",                   # already gone in the image: nothing to say
        "proc": None,                           # a bare mount point
        "untouched": None,
    })
    shutil.copystat(os.path.join(base, "bin"), os.path.join(upper, "bin"))
    os.rmdir(os.path.join(upper, "untouched"))
    assert from_upper(upper, [top, base], ["etc/hosts", "proc"]) == [
        ("/bin", CHANGED), ("/bin/ls", DELETED),
        ("/etc", CHANGED), ("/etc/group", CHANGED), ("/etc/passwd", CHANGED),
        ("/new", ADDED), ("/new/deep", ADDED), ("/new/deep/file", ADDED),
        ("/opt", CHANGED), ("/opt/a", CHANGED), ("/opt/a/z", ADDED),
    ]


def test_a_copied_up_directory_with_nothing_inside_is_no_change(tmp_path):
    base = _tree(tmp_path / "base", {"etc/passwd": "root"})
    upper = _tree(tmp_path / "upper", {"etc/hosts": ""})
    assert from_upper(upper, [base], ["etc/hosts"]) == []
    assert from_upper(upper, [base]) == [("/etc", CHANGED), ("/etc/hosts", ADDED)]


def test_whole_tree_against_the_image(tmp_path):
    base = _tree(tmp_path / "base", {"bin/ls": "ls", "bin/sh": "sh", "etc/passwd": "root", "proc": None})
    root = tmp_path / "root"
    shutil.copytree(base, root, symlinks=True)  # copy2: the image's mtimes
    os.unlink(root / "bin" / "ls")
    (root / "etc" / "passwd").write_text("root\nme")
    (root / "etc" / "hosts").write_text("")
    (root / "added").write_text("a")
    assert from_tree(str(root), [base], ["etc/hosts", "proc"]) == [
        ("/added", ADDED), ("/bin", CHANGED), ("/bin/ls", DELETED), ("/etc", CHANGED), ("/etc/passwd", CHANGED),
    ]
