"""Collect: path mapping, the node script (run here with a local sh), safe unpacking of hostile
archives, the overwrite rule, the manifest, and S3 key mapping."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from vcloud_ansible.collect import plan as collect
from vcloud_ansible.collect.plan import (
    Conflict,
    Layout,
    Manifest,
    NodeCollector,
    NodeInfo,
    Probe,
    RemoteSpec,
    UnsafePath,
    local_rel,
    make_parents,
    place,
    record,
)
from vcloud_ansible.collect.s3 import S3Url, key_rel, node_of
from vcloud_ansible.collect.transport import collect_node, collect_node_ssh, extract_file
from vcloud_ansible.errors import UsageError

NODE = NodeInfo("c-3", 3, "i-0abc")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- REMOTE and where files land ---------------------------------------------------------------------------


@pytest.mark.parametrize(("remote", "suffix", "base", "pattern", "prefix", "contents"), [
    ("out.txt", False, "release", "out.txt", ".", False),
    ("results", False, "release", "results", ".", False),
    ("results/", False, "release", "results", "results", True),
    (".", False, "release", ".", ".", True),
    ("logs/*.txt", False, "release", "logs/*.txt", "logs", False),
    ("a/b/*/c/*.txt", False, "release", "a/b/*/c/*.txt", "a/b", False),
    ("/var/log/syslog", False, "root", "var/log/syslog", "var/log", False),
    ("~/data", False, "home", "data", ".", False),
    ("~", False, "home", ".", ".", True),
    ("out.txt", True, "release", "out.txt", "out.txt", True),
    ("results", True, "release", "results", "results", True),
    ("out*.txt", True, "release", "out*.txt", ".", False),
])
def test_remote_spec(remote: str, suffix: bool, base: str, pattern: str, prefix: str, contents: bool) -> None:
    spec = RemoteSpec.parse(remote, suffix)
    assert (spec.base, spec.pattern, spec.prefix, spec.contents) == (base, pattern, prefix, contents)


@pytest.mark.parametrize("bad", ["", "  ", "a\nb", "a\0b"])
def test_remote_spec_refuses(bad: str) -> None:
    with pytest.raises(UsageError):
        RemoteSpec.parse(bad)


def test_layouts(tmp_path: Path) -> None:
    folders = Layout.make(tmp_path / "res")
    assert folders.node_root("c-2", 2) == tmp_path / "res" / "c-2"
    assert folders.manifest_path == tmp_path / "res" / "vca-manifest.json"
    flat = Layout.make(tmp_path / "res" / "out", suffix=True)
    assert flat.node_root("c-2", 2) == tmp_path / "res" / "out.2"
    assert flat.manifest_path == tmp_path / "res" / "out.manifest.json"
    assert flat.base == tmp_path / "res"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        Layout.make(tmp_path / "file").check()


def test_local_rel() -> None:
    assert local_rel("/r/rel/results/a/b.txt", "/r/rel", False) == "results/a/b.txt"
    assert local_rel("/r/rel/out.txt", "/r/rel/out.txt", True) == ""
    for bad in ("/r/rel/../x", "/r/rel/a/../../x", "/r/rel//x", "/r/other/x", "/r/relx", "/r/rel/./x"):
        with pytest.raises(UnsafePath):
            local_rel(bad, "/r/rel", False)
    with pytest.raises(UnsafePath):
        local_rel("/r/rel", "/r/rel", False)


# -- the overwrite rule ------------------------------------------------------------------------------------


def staged(tmp: Path, data: bytes) -> str:
    f = tmp / f"staged-{len(list(tmp.iterdir()))}"
    f.write_bytes(data)
    return str(f)


def test_place_overwrite_rule(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    stage.mkdir()
    dest = tmp_path / "out.txt"
    assert place(staged(stage, b"one"), str(dest), sha(b"one"), 3, False) == "new"
    assert place(staged(stage, b"one"), str(dest), sha(b"one"), 3, False) == "same"
    with pytest.raises(Conflict, match="exists with other content"):
        place(staged(stage, b"two"), str(dest), sha(b"two"), 3, False)
    assert dest.read_bytes() == b"one"
    assert place(staged(stage, b"two"), str(dest), sha(b"two"), 3, True) == "replaced"
    assert dest.read_bytes() == b"two"
    (tmp_path / "adir").mkdir()
    with pytest.raises(Conflict, match="is a folder"):
        place(staged(stage, b"x"), str(tmp_path / "adir"), sha(b"x"), 1, True)


def test_make_parents_refuses_links_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(UnsafePath):
        make_parents(str(root / "out" / "sub"), str(root))
    (root / "file").write_text("x")
    with pytest.raises(Conflict):
        make_parents(str(root / "file" / "sub"), str(root))
    make_parents(str(root / "a" / "b"), str(root))
    assert (root / "a" / "b").is_dir()
    # The node's folder itself a link (LOCAL/<cluster>-<i> -> elsewhere): refused, nothing made there.
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePath, match="is a link"):
        make_parents(str(linked / "sub"), str(linked))
    assert list((tmp_path / "elsewhere").iterdir()) == []
    with pytest.raises(UnsafePath, match="not below"):
        make_parents(str(tmp_path), str(root))


def test_node_folder_link_refused_before_and_during(tmp_path: Path) -> None:
    layout = Layout.make(tmp_path / "local")
    layout.prepare()
    (tmp_path / "elsewhere").mkdir()
    (layout.local / "c-3").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="c-3 is a link"):
        layout.refuse_links([("c-2", 2), ("c-3", 3)])
    files = {"/h/rel/results/a.txt": b"alpha\n"}
    archive = tarball(tmp_path / "a.tar", [(k.lstrip("/"), v, "") for k, v in files.items()])
    o, _ = finish(tmp_path, probe("/h/rel", files), archive)
    assert not o.ok and "is a link" in o.message()
    assert list((tmp_path / "elsewhere").iterdir()) == []


# -- unpacking what a node sends ---------------------------------------------------------------------------


def tarball(path: Path, members: list[tuple[str, bytes | None, str]]) -> Path:
    """(name, data, link): data None with a link makes a symlink, with link "fifo" a FIFO."""
    with tarfile.open(path, "w") as tf:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if data is None and link == "fifo":
                info.type = tarfile.FIFOTYPE
                tf.addfile(info)
            elif data is None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755
                tf.addfile(info, io.BytesIO(data))
    return path


def probe(base: str, files: dict[str, bytes]) -> Probe:
    return Probe(host="c-3", base=base, roots=[base + "/results"],
                 files={k: sha(v) for k, v in files.items()}, complete=True, compression="none")


def finish(tmp: Path, p: Probe, archive: Path, overwrite: bool = False) -> tuple[Any, Path]:
    layout = Layout.make(tmp / "local")
    layout.prepare()
    collector = NodeCollector(layout, RemoteSpec.parse("results"), NODE, overwrite)
    return collector.finish(p, functools.partial(extract_file, archive, "none"), {}), layout.local / "c-3"


def test_unpack_good_archive(tmp_path: Path) -> None:
    files = {"/h/rel/results/a.txt": b"alpha\n", "/h/rel/results/sub/b.bin": b"\0\1\2"}
    archive = tarball(tmp_path / "a.tar", [(k.lstrip("/"), v, "") for k, v in files.items()])
    o, root = finish(tmp_path, probe("/h/rel", files), archive)
    assert o.ok and o.new == 2 and o.files == 2
    assert (root / "results" / "a.txt").read_bytes() == b"alpha\n"
    assert os.access(root / "results" / "a.txt", os.X_OK)  # the mode travels (without special bits)
    entries = {e["local_path"]: e for e in o.entries}
    assert entries["c-3/results/sub/b.bin"] == {**entries["c-3/results/sub/b.bin"], "node": "c-3",
                                                 "node_index": 3, "instance_id": "i-0abc", "size": 3,
                                                 "remote_path": "/h/rel/results/sub/b.bin"}


@pytest.mark.parametrize(("member", "data", "link", "words"), [
    ("../../escape.txt", b"x", "", "contains '..'"),
    ("/tmp/escape.txt", b"x", "", "did not list"),
    ("h/rel/results/link", None, "/etc", "not a regular file"),
    ("h/rel/results/fifo", None, "fifo", "not a regular file"),
    ("h/rel/results/a.txt", b"tampered", "", "checksum mismatch"),
])
def test_unpack_refuses_hostile_members(tmp_path: Path, member: str, data: bytes | None, link: str,
                                        words: str) -> None:
    files = {"/h/rel/results/a.txt": b"alpha\n"}
    archive = tarball(tmp_path / "a.tar", [(member, data, link), ("h/rel/results/a.txt", b"alpha\n", "")]
                      if not member.endswith("a.txt") else [(member, data, link)])
    before = set(tmp_path.rglob("*"))
    o, root = finish(tmp_path, probe("/h/rel", files), archive)
    assert not o.ok and words in o.message()
    made = {p for p in set(tmp_path.rglob("*")) - before if not p.is_dir()}
    assert all(root in p.parents or p.name == "vca-manifest.json" for p in made), made
    assert not list(tmp_path.rglob("escape.txt")) and not Path("/tmp/escape.txt").exists()


@pytest.mark.parametrize("target", ["OUTSIDE", "../../../../../../../../OUTSIDE"])
def test_archive_cannot_write_through_its_own_links(tmp_path: Path, target: str) -> None:
    """The classic tar attack: a link to a folder outside, then a file "inside" the link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    link = target.replace("OUTSIDE", str(outside).lstrip("/")) if target.startswith("..") else str(outside)
    files = {"/h/rel/results/a.txt": b"alpha\n", "/h/rel/results/d/escape.txt": b"x"}
    archive = tarball(tmp_path / "a.tar", [("h/rel/results/d", None, link), ("h/rel/results/d/escape.txt", b"x", ""),
                                           ("h/rel/results/a.txt", b"alpha\n", "")])
    o, root = finish(tmp_path, probe("/h/rel", files), archive)
    assert not o.ok and "escape.txt" in " ".join(o.errors)
    assert list(outside.iterdir()) == []
    assert (root / "results" / "a.txt").read_bytes() == b"alpha\n"  # what is sound is still collected
    assert not (root / "results" / "d").exists()


def test_fd_sha256_retries_a_read_that_returns_nothing_early(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab's kernel sometimes answers the first read of a just-written file with 0 bytes."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 5000)
    real = os.preadv
    answers = iter([0, 0])
    monkeypatch.setattr(collect.os, "preadv", lambda fd, bufs, at: next(answers, None) or real(fd, bufs, at))
    assert collect.file_sha256(path) == sha(b"x" * 5000)
    monkeypatch.setattr(collect.os, "preadv", lambda fd, bufs, at: 0)  # a file that really stops short
    with pytest.raises(OSError, match="after 0 of 5000 bytes"):
        collect.file_sha256(path)


def test_hostile_listing_names_refused(tmp_path: Path) -> None:
    files = {"/h/rel/results/../../../escape.txt": b"x", "/h/rel/results/ok.txt": b"ok"}
    archive = tarball(tmp_path / "a.tar", [("h/rel/results/ok.txt", b"ok", "")])
    o, root = finish(tmp_path, probe("/h/rel", files), archive)
    assert not o.ok and "refused remote name" in o.message()
    assert (root / "results" / "ok.txt").read_bytes() == b"ok"


def test_unpack_respects_overwrite_rule(tmp_path: Path) -> None:
    files = {"/h/rel/results/a.txt": b"alpha\n"}
    archive = tarball(tmp_path / "a.tar", [("h/rel/results/a.txt", b"alpha\n", "")])
    mine = tmp_path / "local" / "c-3" / "results" / "a.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    o, _ = finish(tmp_path, probe("/h/rel", files), archive)
    assert not o.ok and str(mine) in o.message() and mine.read_text() == "mine"
    o, _ = finish(tmp_path, probe("/h/rel", files), archive, overwrite=True)
    assert o.ok and o.replaced == 1 and mine.read_text() == "alpha\n"


def test_probe_parse() -> None:
    out = "host=n-1\0tmp=/t\0base=/r\0root=/r/x\0file=" + "a" * 64 + "  /r/x/we\nird\0link=/r/x/l\0done=1\0"
    p = Probe.parse(out)
    assert (p.host, p.base, p.roots, p.links, p.complete) == ("n-1", "/r", ["/r/x"], ["/r/x/l"], True)
    assert p.files == {"/r/x/we\nird": "a" * 64}
    assert Probe.parse("error=nothing matches x\0").error == "nothing matches x"


# -- the manifest --------------------------------------------------------------------------------------------


def test_manifest_merge_and_failures(tmp_path: Path) -> None:
    layout = Layout.make(tmp_path / "res")
    e1 = {"node": "c-0", "node_index": 0, "local_path": "c-0/a", "sha256": "1" * 64, "size": 1}
    record(layout, "a", [e1], {"c-1": {"node_index": 1, "remote": "a", "error": "down"}})
    e2 = {**e1, "local_path": "c-1/a", "node": "c-1", "node_index": 1}
    record(layout, "a", [e2, {**e1, "size": 2}], {}, ["c-1"])
    m = Manifest.load(layout.manifest_path)
    assert m.failed_nodes == {} and sorted(m.files) == ["c-0/a", "c-1/a"] and m.files["c-0/a"]["size"] == 2
    doc = json.loads(layout.manifest_path.read_text())
    assert doc["format"] == "vca-collect-manifest/1" and doc["sources"] == ["a"] and len(doc["files"]) == 2
    layout.manifest_path.write_text("{}")
    with pytest.raises(Exception, match="not a vca collect manifest"):
        Manifest.load(layout.manifest_path)


# -- the node script, run with this machine's sh as the "node" ---------------------------------------------


@pytest.fixture
def node_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    rel = home / "vca" / "releases" / "r1"
    (rel / "results" / "sub").mkdir(parents=True)
    (rel / "results" / "a.txt").write_text("alpha\n")
    (rel / "results" / "sub" / "b.txt").write_text("beta\n")
    (rel / "results" / "we\nird").write_text("newline\n")
    (rel / "results" / "in").symlink_to("a.txt")
    (rel / "results" / "out").symlink_to("/etc/hostname")
    (rel / "out.txt").write_text("out\n")
    (home / "vca" / "current").symlink_to("releases/r1")
    return home


def local_shell(home: Path) -> Any:
    def shell(cmd: str, stdin: str | None) -> tuple[int, str, str]:
        r = subprocess.run(["sh", "-c", cmd], input=(stdin or "").encode(), capture_output=True,
                           env={**os.environ, "HOME": str(home)}, check=False)
        return r.returncode, r.stdout.decode("utf-8", "surrogateescape"), r.stderr.decode(errors="replace")
    return shell


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd is not installed")
@pytest.mark.parametrize("compression", ["zstd", "gz", "none"])
def test_node_script_fetch_transport(node_home: Path, tmp_path: Path, compression: str) -> None:
    layout = Layout.make(tmp_path / "res")
    spec = RemoteSpec.parse("results")
    o = collect_node(layout, spec, NODE, shell=local_shell(node_home),
                     fetch=lambda remote, local: shutil.copyfile(remote, local), compression=compression)
    assert o.ok, o.errors
    root = layout.local / "c-3" / "results"
    assert (root / "a.txt").read_text() == "alpha\n" and (root / "in").read_text() == "alpha\n"
    assert (root / "sub" / "b.txt").read_text() == "beta\n" and (root / "we\nird").read_text() == "newline\n"
    assert not (root / "out").exists() and o.links_skipped == [str(node_home.resolve() / "vca/releases/r1/results/out")]
    assert not list((node_home / "vca" / "incoming").iterdir())  # the node's temporary folder is gone
    again = collect_node(layout, spec, NODE, shell=local_shell(node_home),
                         fetch=lambda remote, local: shutil.copyfile(remote, local), compression=compression)
    assert again.ok and again.kept == 3 and again.same == 1 and again.new == 0  # the newline name is sent
    assert len(Manifest.load(layout.manifest_path).files) == 4


def test_node_script_stream_transport(node_home: Path, tmp_path: Path) -> None:
    layout = Layout.make(tmp_path / "res")
    argv = ["env", f"HOME={node_home}", "sh", "-c"]
    for remote, where in (("results/", "c-3/a.txt"), ("results/*.txt", "c-3/a.txt"), ("out.txt", "c-3/out.txt")):
        o = collect_node_ssh(layout, RemoteSpec.parse(remote), NODE, argv, compression="gz")
        assert o.ok, o.errors
        assert (layout.local / where).is_file()
    o = collect_node_ssh(layout, RemoteSpec.parse("nothing*"), NODE, argv)
    assert not o.ok and "nothing matches nothing* on this node" in o.message()
    o = collect_node_ssh(layout, RemoteSpec.parse("x"), NODE, ["sh", "-c", "exit 255; "])
    assert not o.ok and o.message().startswith("unreachable")
    slow = collect_node_ssh(layout, RemoteSpec.parse("x"), NODE, ["sh", "-c", "sleep 30; "], timeout=0.5)
    assert "timed out after" in slow.message()
    suffix = Layout.make(tmp_path / "flat" / "out", suffix=True)
    o = collect_node_ssh(suffix, RemoteSpec.parse("out.txt", suffix=True), NODE, argv, compression="none")
    assert o.ok and (tmp_path / "flat" / "out.3").read_text() == "out\n"


def test_node_script_quotes_hostile_patterns(node_home: Path, tmp_path: Path) -> None:
    pattern = "a'$(touch PWNED)`touch PWNED2`\"*"
    layout = Layout.make(tmp_path / "res")
    o = collect_node(layout, RemoteSpec.parse(pattern), NODE, shell=local_shell(node_home),
                     fetch=lambda remote, local: None)
    assert o.message() == f"nothing matches {pattern} on this node"
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))


def test_node_script_takes_the_last_jobs_release(node_home: Path, tmp_path: Path) -> None:
    """A relative REMOTE is read in the release of the node's last job (~/vca/job), not in a newer
    ~/vca/current whose job never ran; the manifest names the release."""
    v = node_home / "vca"
    (v / "releases" / "r2").mkdir()
    (v / "releases" / "r2" / "out.txt").write_text("r2\n")
    (v / "releases" / "r2" / "only-r2.txt").write_text("new\n")
    (v / "current").unlink()
    (v / "current").symlink_to("releases/r2")
    (v / "jobs" / "r1").mkdir(parents=True)
    (v / "job").symlink_to("jobs/r1")
    layout = Layout.make(tmp_path / "res")
    argv = ["env", f"HOME={node_home}", "sh", "-c"]
    o = collect_node_ssh(layout, RemoteSpec.parse("out.txt"), NODE, argv, compression="none")
    assert o.ok and (layout.local / "c-3" / "out.txt").read_text() == "out\n" and o.release == "r1"
    assert o.entries[0]["release"] == "r1"
    o = collect_node_ssh(layout, RemoteSpec.parse("only-r2.txt"), NODE, argv, compression="none")
    assert not o.ok and "in release r1, where this node's last job ran" in o.message()
    assert "~/vca/current/only-r2.txt" in o.message()
    o = collect_node_ssh(layout, RemoteSpec.parse("~/vca/current/only-r2.txt"), NODE, argv)
    assert o.ok and o.release == "r2"
    (v / "job").unlink()  # no job yet: the current release
    o = collect_node_ssh(Layout.make(tmp_path / "res2"), RemoteSpec.parse("out.txt"), NODE, argv)
    assert o.ok and o.release == "r2"


@pytest.mark.parametrize("remote", ["results/*", "results", "~/vca/current/results/*", "ABS/results/*"])
def test_node_script_skips_top_level_links_out(node_home: Path, tmp_path: Path, remote: str) -> None:
    rel = node_home / "vca" / "releases" / "r1"
    (rel / "results" / "etc").symlink_to("/etc")
    remote = remote.replace("ABS", str(rel))
    layout = Layout.make(tmp_path / "res")
    argv = ["env", f"HOME={node_home}", "sh", "-c"]
    o = collect_node_ssh(layout, RemoteSpec.parse(remote), NODE, argv, compression="none")
    assert o.ok, o.errors
    assert sorted(Path(p).name for p in o.links_skipped) == ["etc", "out"]
    assert not [p for p in layout.local.rglob("*") if p.name in ("hostname", "passwd")]
    for bad in ("results/out", "results/etc/*", "results/etc/"):
        o = collect_node_ssh(layout, RemoteSpec.parse(bad), NODE, argv, compression="none")
        assert not o.ok and "outside" in o.message() and "link" in o.message(), (bad, o.message())


# -- S3 ----------------------------------------------------------------------------------------------------


def test_s3_urls_and_keys() -> None:
    assert S3Url.parse("s3://bucket/run1") == S3Url("bucket", "run1/")
    assert S3Url.parse("s3://bucket") == S3Url("bucket", "")
    assert S3Url.parse("s3://bucket/a/b/") == S3Url("bucket", "a/b/")
    for bad in ("s3://", "s3:///x", "http://b/x", "s3://UP/x", "s3://a/x", "bucket/x"):
        with pytest.raises(UsageError):
            S3Url.parse(bad)
    assert key_rel("run1/c-0/out.txt", "run1/") == "c-0/out.txt"
    assert key_rel("run1/dir/", "run1/") is None
    for bad in ("run1/../x", "run1/a//b", "run1/./x", "run1/a\\..\\x"):
        with pytest.raises(UnsafePath):
            key_rel(bad, "run1/")
    assert node_of("demo-12/out.txt") == ("demo-12", 12)
    assert node_of("summary.csv") == (None, None) and node_of("notanode/x") == (None, None)
