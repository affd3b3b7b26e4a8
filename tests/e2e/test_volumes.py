"""Volumes and bind mounts, end to end as the unprivileged user: named and anonymous volumes,
copy-up, sharing, read-only, host directories and files, rm -v, in-use refusal, inspect."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import Rootless, inspect, one_error, wait_for

pytestmark = pytest.mark.userns


@pytest.fixture
def bb(rl, images) -> Rootless:
    rl.load(images, "busybox")
    return rl


def test_a_named_volume_outlives_its_containers_and_is_shared(bb):
    bb("run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert bb("volume", "ls", "-q").out.split() == ["data"]
    assert bb("run", "--rm", "-v", "data:/data", "busybox", "cat", "/data/f").out == "kept\n"
    # one writes, the other reads at once
    bb("run", "-d", "--name", "writer", "-v", "data:/data", "busybox", "sh", "-c",
       "i=0; while :; do echo $i > /data/live; i=$((i+1)); sleep 0.05; done")
    bb("run", "-d", "--name", "reader", "-v", "data:/data:ro", "busybox", "sleep", "60")
    wait_for(lambda: bb("exec", "reader", "cat", "/data/live", expect=None).out.strip().isdigit(), what="shared")
    r = bb("exec", "reader", "sh", "-c", "echo x > /data/nope", expect=None)
    assert r.code != 0 and "Read-only file system" in r.err
    r = bb("exec", "reader", "mount", "-o", "remount,rw", "/data", expect=None)
    assert r.code != 0  # ro stays ro: the kernel locks the flag in the user namespace
    host = inspect(bb, "writer")["Mounts"][0]
    assert host == {"Type": "volume", "Name": "data", "Source": host["Source"], "Destination": "/data",
                    "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}
    assert os.path.exists(os.path.join(host["Source"], "live"))
    one_error(bb("volume", "rm", "data", expect=1), "volume is in use")
    bb("rm", "-f", "writer", "reader")
    assert (bb.root / "volumes" / "data" / "_data" / "f").read_text() == "kept\n"
    bb("volume", "rm", "data")
    assert bb("volume", "ls", "-q").out == ""


def test_copy_up_of_image_content_with_owners(bb):
    r = bb("run", "--rm", "-v", "etc:/etc", "busybox", "sh", "-c",
           "ls /etc | sort | tr '\\n' ' '; stat -c '%a %u' /etc/passwd")
    assert "passwd" in r.out and "group" in r.out
    files = os.listdir(bb.root / "volumes" / "etc" / "_data")
    assert "passwd" in files
    bb("run", "--rm", "busybox", "sh", "-c", "true")
    # not again once it has content: the volume's own files stay
    bb("run", "--rm", "-v", "etc:/etc", "busybox", "sh", "-c", "rm /etc/group")
    assert bb("run", "--rm", "-v", "etc:/etc", "busybox", "ls", "/etc/group", expect=None).code != 0


def test_anonymous_volumes_from_v_and_rm_v(bb):
    cid = bb("run", "-d", "-v", "/scratch", "busybox", "sh", "-c", "echo a > /scratch/a; sleep 60").out.strip()
    name = inspect(bb, cid)["Mounts"][0]["Name"]
    assert len(name) == 64 and bb("volume", "ls", "-q").out.split() == [name]
    bb("rm", "-f", cid)
    assert bb("volume", "ls", "-q").out.split() == [name]  # kept without -v
    cid = bb("run", "-d", "-v", "/scratch", "busybox", "sleep", "60").out.strip()
    other = inspect(bb, cid)["Mounts"][0]["Name"]
    bb("rm", "-f", "-v", cid)
    assert bb("volume", "ls", "-q").out.split() == [name]
    bb("run", "--rm", "-v", "/scratch", "busybox", "true")  # --rm takes its anonymous volume along
    assert bb("volume", "ls", "-q").out.split() == [name]
    assert other not in bb("volume", "ls", "-q").out
    assert bb("volume", "prune", "-f").out.split()[-1] == name
    assert bb("volume", "ls", "-q").out == ""


def test_bind_mounts_of_host_dirs_and_files(bb, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("from host\n")
    single = tmp_path / "single.conf"
    single.write_text("one file\n")
    made = tmp_path / "made" / "deep"
    r = bb("run", "--rm", "-v", f"{shared}:/shared", "-v", f"{single}:/etc/single.conf:ro", "-v", f"{made}:/made",
           "busybox", "sh", "-c", "cat /shared/in.txt /etc/single.conf; echo out > /shared/out.txt; "
           "echo x > /etc/single.conf || echo refused; touch /made/m")
    assert r.out == "from host\none file\nrefused\n"
    assert (shared / "out.txt").read_text() == "out\n"
    assert (shared / "out.txt").stat().st_uid == os.getuid()  # container root is the user out here
    assert (made / "m").exists()  # -v makes a missing host directory
    cid = bb("create", "-v", f"{shared}:/s:ro", "busybox", "true").out.strip()
    m = inspect(bb, cid)["Mounts"][0]
    assert m == {"Type": "bind", "Source": str(shared), "Destination": "/s", "Mode": "ro", "RW": False,
                 "Propagation": "rprivate"}


def test_a_file_made_by_another_uid_belongs_to_a_subordinate_uid(bb, tmp_path):
    shared = tmp_path / "owned"
    shared.mkdir()
    os.chmod(shared, 0o777)
    bb("run", "--rm", "-u", "1000", "-v", f"{shared}:/o", "busybox", "touch", "/o/by1000")
    assert (shared / "by1000").stat().st_uid != os.getuid()


def test_a_symlink_in_the_image_cannot_send_a_mount_to_the_host(bb, tmp_path):
    bb("run", "--name", "evil", "busybox", "sh", "-c", "ln -s / /escape; ln -s ../../../../tmp /up")
    bb("commit", "evil", "evil")
    outside = tmp_path / "marker"
    bb("run", "--rm", "-v", "e1:/escape/target", "-v", "e2:/up/target", "evil", "true")
    assert not os.path.exists("/target") and not os.path.exists("/tmp/target")
    assert not outside.exists()


def test_bad_volume_flags_are_one_line(bb):
    one_error(bb("run", "-v", "data:relative", "busybox", "true", expect=125), "not an absolute path")
    one_error(bb("run", "-v", "bad name:/d", "busybox", "true", expect=125), "invalid volume name")
    one_error(bb("run", "-v", "va:/d", "-v", "vb:/d", "busybox", "true", expect=125), "duplicate mount point")
    one_error(bb("volume", "rm", "nosuch", expect=1), "no such volume")
    one_error(bb("volume", "inspect", "nosuch", expect=1), "no such volume")
    assert bb("ps", "-aq").out == ""


def test_volume_commands(bb):
    assert bb("volume", "create", "v1", "--label", "team=db").out == "v1\n"
    assert bb("volume", "create", "v1").out == "v1\n"  # Docker keeps an existing one
    anon = bb("volume", "create").out.strip()
    assert len(anon) == 64
    data = json.loads(bb("volume", "inspect", "v1").out)[0]
    assert {k: data[k] for k in ("Name", "Driver", "Labels", "Scope")} == {
        "Name": "v1", "Driver": "local", "Labels": {"team": "db"}, "Scope": "local"}
    assert data["Mountpoint"].endswith("/volumes/v1/_data") and data["CreatedAt"]
    assert bb("volume", "ls", "-q", "--filter", "label=team=db").out.split() == ["v1"]
    assert bb("volume", "ls", "-q", "--filter", "name=v").out.split() == ["v1"]
    bb("create", "--name", "user", "-v", "v1:/x", "busybox", "true")
    assert bb("volume", "ls", "-q", "--filter", "dangling=true").out.split() == [anon]
    assert "VOLUME NAME" in bb("volume", "ls").out
    assert bb("volume", "prune", "-f").out.split()[-1] == anon  # anonymous ones only
    bb("volume", "prune", "-f", "-a")  # v1 is used by a stopped container: it stays
    assert bb("volume", "ls", "-q").out.split() == ["v1"]
    bb("run", "--rm", "-v", "v1:/x", "busybox", "sh", "-c", "head -c 300000 /dev/zero > /x/blob")
    row = [ln.split() for ln in bb("system", "df").out.splitlines() if ln.startswith("Local Volumes")][0]
    assert row[2:4] == ["1", "1"] and row[4].endswith("kB")  # one volume, in use, 300 kB
    assert "1 volume(s) in" in bb("info").out
    bb("volume", "rm", "-f", "v1")
    assert bb("volume", "ls", "-q").out == ""


def test_volumes_from_chains_and_a_stopped_source(bb):
    bb("create", "--name", "store", "-v", "/data", "-v", "named:/named", "busybox", "true")
    bb("run", "--rm", "--volumes-from", "store", "busybox", "sh", "-c", "echo one > /data/f; echo two > /named/g")
    bb("create", "--name", "middle", "--volumes-from", "store:ro", "busybox", "true")
    r = bb("run", "--rm", "--volumes-from", "middle", "busybox", "sh", "-c",
           "cat /data/f /named/g; echo x > /data/h || echo refused")
    assert r.out == "one\ntwo\nrefused\n"  # the chain carries the mode
    mounts = {m["Destination"]: m for m in inspect(bb, "middle")["Mounts"]}
    assert set(mounts) == {"/data", "/named"} and not mounts["/data"]["RW"]
    anon = mounts["/data"]["Name"]
    bb("rm", "-v", "middle")  # its volumes were not its own
    assert anon in bb("volume", "ls", "-q").out
    one_error(bb("run", "--volumes-from", "nosuch", "busybox", "true", expect=125), "No such container: nosuch")


def test_backup_and_restore_with_volumes_from(bb, tmp_path):
    bb("run", "--name", "data", "-v", "/data", "busybox", "sh", "-c", "mkdir /data/d; echo precious > /data/d/f")
    backup = tmp_path / "backup"
    backup.mkdir()
    bb("run", "--rm", "--volumes-from", "data", "-v", f"{backup}:/backup", "busybox",
       "tar", "cf", "/backup/backup.tar", "/data")
    assert (backup / "backup.tar").stat().st_size > 0
    bb("run", "--name", "restored", "-v", "/data", "busybox", "true")
    bb("run", "--rm", "--volumes-from", "restored", "-v", f"{backup}:/backup", "busybox", "sh", "-c",
       "cd / && tar xf /backup/backup.tar")
    assert bb("run", "--rm", "--volumes-from", "restored", "busybox", "cat", "/data/d/f").out == "precious\n"


def test_commit_leaves_volume_data_out(bb):
    bb("run", "--name", "c", "-v", "vol:/vol", "busybox", "sh", "-c", "echo in-volume > /vol/v; echo in-root > /r")
    bb("commit", "c", "committed")
    r = bb("run", "--rm", "committed", "sh", "-c", "cat /r; ls /vol 2>/dev/null | wc -l")
    assert r.out.split() == ["in-root", "0"]


def test_mount_flag_tmpfs_and_read_only_root(bb, tmp_path):
    one_error(bb("run", "--mount", f"type=bind,src={tmp_path}/missing,dst=/m", "busybox", "true", expect=125),
              "bind source path does not exist")
    assert not (tmp_path / "missing").exists()
    r = bb("run", "--rm", "--read-only", "--tmpfs", "/scratch:size=1m", "--mount", "type=volume,src=rw,dst=/rw",
           "--mount", f"type=bind,src={tmp_path},dst=/host,readonly", "busybox", "sh", "-c",
           "touch /nope 2>/dev/null || echo root-ro; touch /scratch/ok && echo tmpfs-rw; "
           "touch /rw/ok && echo volume-rw; touch /host/x 2>/dev/null || echo bind-ro; "
           "grep ' /scratch ' /proc/mounts | grep -c 'size=1024k'; touch /dev/shm/ok && echo shm-rw")
    assert r.out.split() == ["root-ro", "tmpfs-rw", "volume-rw", "bind-ro", "1", "shm-rw"]
    cid = bb("create", "--read-only", "--tmpfs", "/t", "busybox", "true").out.strip()
    data = inspect(bb, cid)
    assert data["HostConfig"]["ReadonlyRootfs"] is True
    assert [m["Type"] for m in data["Mounts"]] == ["tmpfs"]


def test_U_gives_the_source_to_the_container_user(bb, tmp_path):
    owned = tmp_path / "u"
    owned.mkdir()
    (owned / "old").write_text("x")
    r = bb("run", "--rm", "-u", "1000:1000", "-v", f"{owned}:/u:U", "busybox", "sh", "-c",
           "stat -c %u:%g /u /u/old; touch /u/new && echo writable")
    assert r.out.split() == ["1000:1000", "1000:1000", "writable"]
    r = bb("run", "--rm", "-u", "1000", "-v", "uvol:/v:U", "busybox", "sh", "-c",
           "stat -c %u /v; touch /v/n && echo ok")
    assert r.out.split() == ["1000", "ok"]
    bb("unshare", "chown", "-R", "0:0", str(owned))  # give it back for pytest's clean-up


def test_an_images_VOLUME_gets_an_anonymous_volume_with_its_files(bb):
    bb("run", "--name", "base", "busybox", "sh", "-c",
       "mkdir -p /srv/data && echo seed > /srv/data/s && chown -R 1000:1000 /srv/data")
    bb("commit", "-c", "VOLUME /srv/data", "base", "withvol")
    cid = bb("run", "-d", "withvol", "sh", "-c",
             "cat /srv/data/s; stat -c %u /srv/data/s; echo new > /srv/data/n; sleep 60").out.strip()
    wait_for(lambda: "1000" in bb("logs", cid).out, what="the output")
    assert bb("logs", cid).out == "seed\n1000\n"  # copied up, owner kept
    m = inspect(bb, cid)["Mounts"]
    assert [(x["Type"], x["Destination"]) for x in m] == [("volume", "/srv/data")] and len(m[0]["Name"]) == 64
    # -v for that path replaces the anonymous one
    cid2 = bb("create", "-v", "mine:/srv/data", "withvol", "true").out.strip()
    assert [x.get("Name") for x in inspect(bb, cid2)["Mounts"]] == ["mine"]
    bb("rm", "-f", "-v", cid)
    assert m[0]["Name"] not in bb("volume", "ls", "-q").out


def test_volumes_in_single_uid_mode(rl, images, tmp_path):
    rl.configure(idmap="single")
    rl.load(images, "busybox")
    shared = tmp_path / "single"
    shared.mkdir()
    r = rl("run", "--rm", "-v", "vol:/v", "-v", f"{shared}:/s", "busybox", "sh", "-c",
           "echo a > /v/a; echo b > /s/b; cat /v/a")
    assert r.out == "a\n"
    assert (shared / "b").stat().st_uid == os.getuid()
    assert (rl.root / "volumes" / "vol" / "_data" / "a").stat().st_uid == os.getuid()
    assert rl("run", "--rm", "-v", "vol:/v", "busybox", "cat", "/v/a").out == "a\n"


def test_a_read_only_volume_over_etc_without_hosts_in_the_image(bb, tmp_path):
    import tarfile
    bb("create", "--name", "src", "busybox", "true")
    bb("export", "-o", tmp_path / "full.tar", "src")
    with tarfile.open(tmp_path / "full.tar") as full, tarfile.open(tmp_path / "bare.tar", "w") as bare:
        for m in full.getmembers():
            if m.name.removeprefix("./") not in ("etc/hosts", "etc/hostname", "etc/resolv.conf"):
                bare.addfile(m, full.extractfile(m) if m.isfile() else None)
    bb("import", tmp_path / "bare.tar", "nohosts")
    r = bb("run", "--rm", "-v", "etcro:/etc:ro", "nohosts", "sh", "-c",
           "grep -c localhost /etc/hosts; touch /etc/new 2>/dev/null || echo ro")
    assert r.out.split()[-1] == "ro" and int(r.out.split()[0]) >= 1


@pytest.mark.parametrize("flag, propagation, tag", [
    ("-v {src}:/mnt:rw,rshared", "rshared", "shared:"),
    ("-v {src}:/mnt:ro,shared", "shared", "shared:"),
    ("--mount type=bind,src={src},dst=/mnt,bind-propagation=rslave", "rslave", ""),
    ("-v {src}:/mnt", "rprivate", ""),
])
def test_a_binds_propagation_is_taken_applied_and_shown(bb, tmp_path, flag, propagation, tag):
    """Docker's propagation words in a bind's mode or --mount: the container's mount gets the
    propagation (among its own mounts: nothing reaches the host's, which are not ours), inspect
    shows it."""
    cid = bb("run", "-d", *flag.format(src=tmp_path).split(), "busybox", "sleep", "300").out.strip()
    line = next(ln for ln in bb("exec", cid, "cat", "/proc/self/mountinfo").out.splitlines() if " /mnt " in ln)
    optional = line.split(" - ")[0].split()[6:]
    assert (tag in " ".join(optional)) if tag else not optional, line
    (m,) = inspect(bb, cid)["Mounts"]
    assert (m["Type"], m["Propagation"]) == ("bind", propagation)
    bb("rm", "-f", cid)


@pytest.mark.parametrize("flags, message", [
    (("-v", "data:/mnt:rshared"), "invalid mode 'rshared'"),
    (("-v", "/tmp:/mnt:rshared,rslave"), "invalid mode 'rshared,rslave'"),
    (("--mount", "type=volume,src=data,dst=/m,bind-propagation=rshared"), "bind-propagation 'rshared'"),
    (("--mount", "type=bind,src=/tmp,dst=/m,bind-propagation=sideways"), "bind-propagation 'sideways'"),
    (("--mount", "type=volume,src=data,dst=/m,volume-subpath=../up"), "must be a relative path inside the volume"),
    (("--mount", "type=volume,src=data,dst=/m,volume-subpath=/abs"), "must be a relative path inside the volume"),
    (("--mount", "type=volume,dst=/m,volume-subpath=sub"), "volume-subpath needs a named volume"),
])
def test_bad_propagation_and_subpath_are_one_line(bb, flags, message):
    one_error(bb("create", *flags, "busybox", "true", expect=125), message)
    assert bb("ps", "-aq").out == ""


def test_a_volume_subpath_is_mounted_and_stays_inside_the_volume(bb):
    bb("run", "--rm", "-v", "data:/vol", "busybox", "sh", "-c",
       "mkdir -p /vol/sub && echo inside > /vol/sub/f && ln -s /etc /vol/out && ln -s ../../.. /vol/sub/up")
    r = bb("run", "--rm", "--mount", "type=volume,src=data,dst=/m,volume-subpath=sub,readonly", "busybox", "sh",
           "-c", "cat /m/f; ls /m; touch /m/x", expect=1)
    assert r.out.split() == ["inside", "f", "up"] and "Read-only file system" in r.err
    # links in the volume are followed inside it: /etc of the volume (none), never the host's
    one_error(bb("run", "--rm", "--mount", "type=volume,src=data,dst=/m,volume-subpath=out", "busybox", "true",
                 expect=125), "cannot mount the volume's subpath out: it does not exist in the volume")
    r = bb("run", "--rm", "--mount", "type=volume,src=data,dst=/m,volume-subpath=sub/up", "busybox", "ls", "/m")
    assert r.out.split() == ["out", "sub"]  # ../../.. from sub stops at the volume's root
    one_error(bb("run", "--rm", "--mount", "type=volume,src=data,dst=/m,volume-subpath=nope", "busybox", "true",
                 expect=125), "cannot mount the volume's subpath nope")


# ---- the local driver's options (docker volume create --opt, DriverOpts, Compose's driver_opts) --------------
def test_a_bind_volume_is_the_host_directory_its_device_names(bb, tmp_path):
    host = tmp_path / "data"
    host.mkdir()
    (host / "seed").write_text("from the host\n")
    bb("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", f"device={host}", "hostdir")
    opts = json.loads(bb("volume", "inspect", "hostdir").out)[0]["Options"]
    assert opts == {"type": "none", "o": "bind", "device": str(host)}
    r = bb("run", "--rm", "--network", "none", "-v", "hostdir:/v", "busybox", "sh", "-c",
           "cat /v/seed; echo new > /v/n")
    assert r.out == "from the host\n" and (host / "n").read_text() == "new\n"
    bb("run", "--rm", "--network", "none", "--mount", "type=volume,src=hostdir,dst=/w", "busybox", "test", "-f", "/w/n")
    bb("volume", "rm", "hostdir")
    assert (host / "n").read_text() == "new\n"  # the host's directory is the user's: removing the volume keeps it


def test_a_bind_volume_of_an_empty_directory_gets_the_images_files_and_ro_is_kept(bb, tmp_path):
    host = tmp_path / "empty"
    host.mkdir()
    bb("volume", "create", "-o", "type=none", "-o", "o=bind,ro", "-o", f"device={host}", "rovol")
    r = bb("run", "--rm", "--network", "none", "-v", "rovol:/etc", "busybox", "sh", "-c",
           "ls /etc/passwd && touch /etc/x", expect=None)
    assert r.code != 0 and "Read-only file system" in r.err
    assert (host / "passwd").is_file()  # the image's files filled it while it was empty, as Docker's
    host_gone = tmp_path / "missing"
    bb("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={host_gone}", "nodir")
    bad = bb("run", "--rm", "-v", "nodir:/v", "busybox", "true", expect=125)
    assert f"its device {host_gone} is not a directory" in bad.err


def test_a_tmpfs_volume_is_new_at_each_mount(bb):
    bb("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=5m,mode=0700", "scratch")
    r = bb("run", "--rm", "--network", "none", "-v", "scratch:/s", "busybox", "sh", "-c",
           "grep ' /s ' /proc/mounts; stat -c %a /s; echo x > /s/f")
    assert "tmpfs /s tmpfs" in r.out and "size=5120k" in r.out and r.out.splitlines()[-1] == "700"
    assert bb("run", "--rm", "--network", "none", "-v", "scratch:/s", "busybox", "ls", "/s").out == ""


@pytest.mark.parametrize("opts, words", [
    (["type=nfs", "o=addr=10.0.0.1", "device=:/export"], "needs a mount only the host's root may make"),
    (["type=none", "o=bind"], 'missing required option: "device"'),
    (["type=none", "o=bind", "device=relative/dir"], "a bind volume's device is an absolute host path"),
    (["type=tmpfs", "device=tmpfs", "o=bogus=1"], "invalid tmpfs option"),
    (["colour=blue", "device=x"], "invalid option key: 'colour'"),
    (["novalue"], "invalid --opt 'novalue'"),
])
def test_bad_driver_options_are_one_line_and_make_nothing(bb, opts, words):
    r = bb("volume", "create", *[a for o in opts for a in ("--opt", o)], "badvol", expect=125)
    assert words in r.err and "Traceback" not in r.err
    assert "badvol" not in bb("volume", "ls", "-q").out


def test_the_api_takes_driver_opts_as_compose_sends_them(api, tmp_path):
    host = tmp_path / "compose-data"
    host.mkdir()
    status, body = api.request("POST", "/volumes/create", {
        "Name": "proj_data", "Driver": "local", "DriverOpts": {"type": "none", "o": "bind", "device": str(host)}})
    assert status == 201 and body["Options"] == {"type": "none", "o": "bind", "device": str(host)}
    api.docker("run", "--rm", "--network", "none", "-v", "proj_data:/d", "busybox", "sh", "-c", "echo hi > /d/f")
    assert (host / "f").read_text() == "hi\n"
    status, body = api.request("POST", "/volumes/create",
                               {"Name": "nfs", "DriverOpts": {"type": "nfs", "device": ":/x"}})
    assert status == 400 and "host's root" in body["message"]
