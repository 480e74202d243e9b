"""Packages: reproducible folder packing, .vcaignore, validation of folders and hostile tarballs."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from vcloud_ansible.errors import UsageError
from vcloud_ansible.release.package import (
    DEFAULT_MTIME,
    LAUNCH_NAMES,
    TARBALL_SUFFIXES,
    mkpkg,
    parse_ignore,
    prepare,
)

REPO = Path(__file__).resolve().parents[3]
HELLO = REPO / "examples" / "hello"


def make_pkg(root: Path, launch: str = "vcloud-launch", files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    script = root / launch
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    for name, text in (files or {"lib/data.txt": "data\n", "run.py": "print(1)\n"}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def names(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as tar:
        return tar.getnames()


def members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball) as tar:
        return {m.name: m for m in tar.getmembers()}


def sha12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


# --- folders: reproducible packing ------------------------------------------------------------------


def test_folder_packs_deterministically(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    one = prepare(src, tmp_path / "c1")
    two = prepare(src, tmp_path / "c2")
    assert one.path.read_bytes() == two.path.read_bytes()
    assert one.release_id == two.release_id == sha12(one.path)
    assert one.path == tmp_path / "c1" / f"{one.release_id}.tar.gz"
    assert (one.launch, one.compression, one.size) == ("vcloud-launch", "gz", one.path.stat().st_size)

    # metadata that does not reach the node: mtimes, group/other bits, exact exec bits
    for p in src.rglob("*"):
        os.utime(p, (1_234_567, 1_234_567))
    (src / "vcloud-launch").chmod(0o700)
    (src / "run.py").chmod(0o600)
    (src / "lib").chmod(0o700)
    three = prepare(src, tmp_path / "c3")
    assert three.path.read_bytes() == one.path.read_bytes()
    assert three.release_id == one.release_id


def test_reuses_the_cached_file(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    first = prepare(src, tmp_path / "cache")
    before = first.path.stat().st_ino
    again = prepare(src, tmp_path / "cache")
    assert again.path == first.path and again.path.stat().st_ino == before
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [first.path.name]  # no temp left


def test_content_change_gives_new_id(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    one = prepare(src, tmp_path / "cache")
    (src / "run.py").write_text("print(2)\n")
    two = prepare(src, tmp_path / "cache")
    assert two.release_id != one.release_id
    (src / "run.py").write_text("print(1)\n")
    (src / "run.py").chmod(0o755)  # an exec bit is content
    assert prepare(src, tmp_path / "cache").release_id not in {one.release_id, two.release_id}


def test_tar_metadata_is_normalised(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    (src / "tool.sh").write_text("#!/bin/sh\n")
    (src / "tool.sh").chmod(0o710)
    (src / "empty").mkdir()
    packed = prepare(src, tmp_path / "cache")
    raw = packed.path.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] & 0x08 == 0  # gzip FNAME flag off: no file name in the header
    assert raw[4:8] == b"\0\0\0\0"  # gzip mtime 0
    m = members(packed.path)
    assert list(m) == sorted(m)
    assert set(m) == {"empty", "lib", "lib/data.txt", "run.py", "tool.sh", "vcloud-launch"}
    assert {n: oct(i.mode) for n, i in m.items()} == {
        "empty": "0o755", "lib": "0o755", "lib/data.txt": "0o644", "run.py": "0o644",
        "tool.sh": "0o755", "vcloud-launch": "0o755",
    }
    for info in m.values():
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "", "", DEFAULT_MTIME)


def test_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_pkg(tmp_path / "pkg")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    packed = prepare(src, tmp_path / "cache")
    assert {i.mtime for i in members(packed.path).values()} == {1700000000}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH"):
        prepare(src, tmp_path / "cache")


def test_inner_symlinks_kept(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    (src / "lib" / "link").symlink_to("../run.py")
    (src / "alias").symlink_to("lib")
    (src / "alias2").symlink_to("alias/data.txt")
    m = members(prepare(src, tmp_path / "cache").path)
    assert m["lib/link"].issym() and m["lib/link"].linkname == "../run.py"
    assert m["alias2"].linkname == "alias/data.txt"


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside", "lib/../../x", "self/../.."])
def test_escaping_symlink_in_folder(tmp_path: Path, target: str) -> None:
    src = make_pkg(tmp_path / "pkg")
    (src / "self").symlink_to(".")
    (src / "bad").symlink_to(target)
    with pytest.raises(UsageError, match=r"symlink bad -> .* points outside the package"):
        prepare(src, tmp_path / "cache")


def test_symlink_escaping_through_inner_link(tmp_path: Path) -> None:
    # "up" looks harmless lexically (a/.. is the root) but "a" is a link to lib/, so up is the parent
    src = make_pkg(tmp_path / "pkg")
    (src / "a").symlink_to("lib")
    (src / "lib" / "sub").mkdir()
    (src / "lib" / "sub" / "up").symlink_to("../../..")
    with pytest.raises(UsageError, match="lib/sub/up"):
        prepare(src, tmp_path / "cache")
    (src / "lib" / "sub" / "up").unlink()
    (src / "deep").symlink_to("a/../..")  # a -> lib, lib/.. -> root, root/.. -> outside
    with pytest.raises(UsageError, match="deep"):
        prepare(src, tmp_path / "cache")


def test_fifo_in_folder_refused_unless_ignored(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    os.mkfifo(src / "pipe")
    with pytest.raises(UsageError, match="pipe is a fifo"):
        prepare(src, tmp_path / "cache")
    (src / ".vcaignore").write_text("pipe\n")
    assert "pipe" not in names(prepare(src, tmp_path / "cache").path)


# --- folders: what is left out ------------------------------------------------------------------------


def test_vcs_folders_excluded_anywhere(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    for vcs in (".git", "lib/.hg", "lib/deep/.svn", ".bzr", "_darcs", "CVS"):
        (src / vcs).mkdir(parents=True)
        (src / vcs / "x").write_text("x")
    got = names(prepare(src, tmp_path / "cache").path)
    assert got == ["lib", "lib/data.txt", "lib/deep", "run.py", "vcloud-launch"]


def test_vcaignore(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg", files={
        "a.log": "", "keep.log": "", "sub/b.log": "", "build/out.o": "", "sub/build": "file, not dir",
        "docs/x.md": "", "docs/y.txt": "", "other/docs/x.md": "", "data/big.bin": "", "data/small.bin": "",
    })
    (src / ".vcaignore").write_text(
        "# comment\n\n*.log\n!keep.log\nbuild/\n/docs/*.md\ndata\n!data/small.bin\n.vcaignore   \n"
    )
    got = names(prepare(src, tmp_path / "cache").path)
    assert got == ["docs", "docs/y.txt", "keep.log", "other", "other/docs", "other/docs/x.md",
                   "sub", "sub/build", "vcloud-launch"]


def test_vcaignore_itself_is_packed_by_default(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    (src / ".vcaignore").write_text("run.py\n")
    assert names(prepare(src, tmp_path / "cache").path) == [
        ".vcaignore", "lib", "lib/data.txt", "vcloud-launch"]


def test_parse_ignore_subset() -> None:
    rules = parse_ignore("# c\n\n  \n!a/b/\n/x\ny  \n")
    assert [(r.pattern, r.negate, r.dir_only, r.by_path) for r in rules] == [
        ("a/b", True, True, True), ("x", False, False, True), ("y", False, False, False)]


def test_ignoring_the_launch_script_is_an_error(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    (src / ".vcaignore").write_text("vcloud-launch\n")
    with pytest.raises(UsageError, match="no vcloud-launch or vca-launch"):
        prepare(src, tmp_path / "cache")


# --- folders: validation ---------------------------------------------------------------------------


def test_vca_launch_accepted(tmp_path: Path) -> None:
    assert prepare(make_pkg(tmp_path / "pkg", launch="vca-launch"), tmp_path / "cache").launch == "vca-launch"


def test_both_launch_names_prefer_vcloud(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg", launch="vca-launch")
    make_pkg(src)
    assert prepare(src, tmp_path / "cache").launch == LAUNCH_NAMES[0]


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        prepare(tmp_path / "nope", tmp_path / "cache")


def test_not_folder_or_tarball(tmp_path: Path) -> None:
    (tmp_path / "pkg.zip").write_bytes(b"PK")
    with pytest.raises(UsageError, match=r"not a folder or a tarball \(\.tar,") as exc:
        prepare(tmp_path / "pkg.zip", tmp_path / "cache")
    assert "vca mkpkg" in exc.value.one_line()


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    with pytest.raises(UsageError, match="is empty"):
        prepare(tmp_path / "pkg", tmp_path / "cache")


def test_no_launch(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg", launch="launch.sh")
    with pytest.raises(UsageError, match="no vcloud-launch or vca-launch at the root") as exc:
        prepare(src, tmp_path / "cache")
    assert "add an executable vcloud-launch" in exc.value.one_line()
    tb = make_tar(tmp_path / "p.tar", ("launch.sh", {}))
    with pytest.raises(UsageError, match="no vcloud-launch or vca-launch at the root") as exc:
        prepare(tb, tmp_path / "cache")
    assert "vca mkpkg DIR" in exc.value.one_line()


def test_launch_in_a_subfolder(tmp_path: Path) -> None:
    make_pkg(tmp_path / "outer" / "app")
    with pytest.raises(UsageError, match=r"launch script in a folder \(app/vcloud-launch\)") as exc:
        prepare(tmp_path / "outer", tmp_path / "cache")
    assert f"give {tmp_path / 'outer' / 'app'} as the package" in exc.value.one_line()


def test_launch_not_executable(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    (src / "vcloud-launch").chmod(0o644)
    with pytest.raises(UsageError, match=r"vcloud-launch .* is not executable") as exc:
        prepare(src, tmp_path / "cache")
    assert "chmod +x vcloud-launch" in exc.value.one_line()


def test_launch_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "vcloud-launch").mkdir(parents=True)
    (tmp_path / "pkg" / "vcloud-launch" / "x").write_text("x")
    with pytest.raises(UsageError, match=r"vcloud-launch .* is a folder"):
        prepare(tmp_path / "pkg", tmp_path / "cache")


def test_launch_link_escaping(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "vcloud-launch").symlink_to("/bin/true")
    with pytest.raises(UsageError, match=r"symlink vcloud-launch -> /bin/true .* outside"):
        prepare(tmp_path / "pkg", tmp_path / "cache")


def test_launch_link_inside(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg", files={"bin/start": "#!/bin/sh\n"})
    (src / "vcloud-launch").unlink()
    (src / "bin" / "start").chmod(0o755)
    (src / "vcloud-launch").symlink_to("bin/start")
    assert prepare(src, tmp_path / "cache").launch == "vcloud-launch"
    (src / "bin" / "start").chmod(0o644)
    with pytest.raises(UsageError, match="not executable"):
        prepare(src, tmp_path / "cache")
    (src / "bin" / "start").unlink()
    with pytest.raises(UsageError, match="link to a missing file"):
        prepare(src, tmp_path / "cache")


def test_launch_not_regular(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg", launch="x")
    os.mkfifo(src / "vcloud-launch")
    with pytest.raises(UsageError, match="vcloud-launch is a fifo"):
        prepare(src, tmp_path / "cache")


# --- tarballs ------------------------------------------------------------------------------------------


def add(tar: tarfile.TarFile, name: str, *, data: bytes = b"#!/bin/sh\n", mode: int = 0o755,
        kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


Entry = tuple[str, dict[str, Any]]


def make_tar(path: Path, *entries: Entry) -> Path:
    modes = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz"}
    suffix = next(s for s in sorted(modes, key=len, reverse=True) if path.name.endswith(s))
    with tarfile.open(path, modes[suffix]) as tar:  # type: ignore[call-overload]
        for name, kw in entries:
            add(tar, name, **kw)
    return path


GOOD: Entry = ("vcloud-launch", {})


@pytest.mark.parametrize(("suffix", "compression"), [
    (".tar", ""), (".tar.gz", "gz"), (".tgz", "gz"), (".tar.bz2", "bz2"), (".tar.xz", "xz")])
def test_tarball_accepted_as_is(tmp_path: Path, suffix: str, compression: str) -> None:
    assert suffix in TARBALL_SUFFIXES
    tb = make_tar(tmp_path / f"pkg{suffix}", ("./", {"kind": tarfile.DIRTYPE}), ("./vcloud-launch", {}),
                  ("lib/x", {"data": b"x", "mode": 0o644}), ("lib/l", {"kind": tarfile.SYMTYPE, "link": "x"}),
                  ("hard", {"kind": tarfile.LNKTYPE, "link": "./lib/x"}))
    packed = prepare(tb, tmp_path / "cache")
    assert packed.release_id == sha12(tb)
    assert packed.path == tmp_path / "cache" / f"{packed.release_id}{suffix}"
    assert packed.path.read_bytes() == tb.read_bytes()  # not repacked
    assert (packed.compression, packed.size) == (compression, tb.stat().st_size)
    assert packed.launch == "vcloud-launch"
    assert prepare(tb, tmp_path / "cache") == packed
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_tarball_compression_from_content_not_name(tmp_path: Path) -> None:
    tb = make_tar(tmp_path / "pkg.tar", GOOD)
    lying = tmp_path / "pkg.tar.gz"
    lying.write_bytes(tb.read_bytes())
    packed = prepare(lying, tmp_path / "cache")
    assert packed.compression == ""
    assert packed.path.name == f"{packed.release_id}.tar"


def test_tarball_vca_launch(tmp_path: Path) -> None:
    assert prepare(make_tar(tmp_path / "p.tgz", ("vca-launch", {})), tmp_path / "c").launch == "vca-launch"


@pytest.mark.parametrize(("entry", "message"), [
    (("/abs/file", {}), "absolute path: /abs/file"),
    (("../x", {}), r"'\.\.' in its path: \.\./x"),
    (("lib/../../x", {}), r"'\.\.' in its path"),
    (("evil", {"kind": tarfile.SYMTYPE, "link": "/etc/passwd"}), r"symlink evil -> /etc/passwd .* outside"),
    (("a/b", {"kind": tarfile.SYMTYPE, "link": "../../x"}), r"symlink a/b -> \.\./\.\./x .* outside"),
    (("h", {"kind": tarfile.LNKTYPE, "link": "/etc/passwd"}), r"hard link .*outside.* h -> /etc/passwd"),
    (("h", {"kind": tarfile.LNKTYPE, "link": "../x"}), r"hard link pointing outside .* h -> \.\./x"),
    (("h", {"kind": tarfile.LNKTYPE, "link": "not-there"}), "hard link to no earlier file .* h -> not-there"),
    (("pipe", {"kind": tarfile.FIFOTYPE}), "fifo member: pipe"),
    (("dev", {"kind": tarfile.CHRTYPE}), "device member: dev"),
])
def test_hostile_tarballs(tmp_path: Path, entry: Entry, message: str) -> None:
    tb = make_tar(tmp_path / "bad.tar.gz", GOOD, entry)
    with pytest.raises(UsageError, match=message) as exc:
        prepare(tb, tmp_path / "cache")
    assert "bad.tar.gz" in exc.value.message
    assert not list((tmp_path / "cache").iterdir())  # nothing kept


def test_tarball_symlink_redefined(tmp_path: Path) -> None:
    # lnk -> /etc lets a later member write through it; a final harmless lnk must not hide that
    tb = make_tar(tmp_path / "p.tar", GOOD, ("lnk", {"kind": tarfile.SYMTYPE, "link": "/etc"}),
                  ("lnk/passwd", {}), ("lnk", {"kind": tarfile.SYMTYPE, "link": "lib"}))
    with pytest.raises(UsageError, match="symlink lnk appears twice"):
        prepare(tb, tmp_path / "cache")


def test_tarball_hardlink_to_folder(tmp_path: Path) -> None:
    tb = make_tar(tmp_path / "p.tar", GOOD, ("d", {"kind": tarfile.DIRTYPE}),
                  ("h", {"kind": tarfile.LNKTYPE, "link": "d"}))
    with pytest.raises(UsageError, match="hard link to no earlier file"):
        prepare(tb, tmp_path / "cache")


def test_tarball_symlink_loop(tmp_path: Path) -> None:
    tb = make_tar(tmp_path / "p.tar", GOOD, ("a", {"kind": tarfile.SYMTYPE, "link": "b"}),
                  ("b", {"kind": tarfile.SYMTYPE, "link": "a"}))
    with pytest.raises(UsageError, match="loops"):
        prepare(tb, tmp_path / "cache")


@pytest.mark.parametrize("suffix", [".tgz", ".tar.bz2", ".tar"])
def test_old_mkpkg_tarball_is_repacked_without_its_folder(tmp_path: Path, suffix: str) -> None:
    tb = make_tar(tmp_path / f"p{suffix}", ("./hello", {"kind": tarfile.DIRTYPE}), ("./hello/vcloud-launch", {}),
                  ("hello/lib/x", {"data": b"x", "mode": 0o640}),
                  ("hello/lib/l", {"kind": tarfile.SYMTYPE, "link": "x"}),
                  ("hello/hard", {"kind": tarfile.LNKTYPE, "link": "hello/lib/x"}))
    packed = prepare(tb, tmp_path / "cache")
    assert "in the folder hello/ (as the old mkpkg made it): repacked without that folder" in packed.note
    assert packed.compression == "gz" and packed.path.name == f"{packed.release_id}.tar.gz"
    assert packed.release_id == sha12(packed.path) and packed.launch == "vcloud-launch"
    with tarfile.open(packed.path) as tar:
        got = {m.name: (m.type, m.linkname, m.mode & 0o777) for m in tar.getmembers()}
        assert tar.extractfile("lib/x").read() == b"x"  # type: ignore[union-attr]
    with tarfile.open(tb) as tar:  # the same members, modes and links, one folder up
        want = {m.name.removeprefix("./").removeprefix("hello/"): (m.type, m.linkname.removeprefix("hello/"),
                                                                  m.mode & 0o777)
                for m in tar.getmembers() if m.name not in ("./hello", "hello")}
    assert got == want and set(got) == {"vcloud-launch", "lib/x", "lib/l", "hard"}
    again = prepare(tb, tmp_path / "other-cache")  # the same old tarball gives the same release
    assert again.release_id == packed.release_id
    assert not list((tmp_path / "cache").glob(".vca-*"))  # no temporary file left


def test_tarball_launch_deeper_or_beside_other_folders_is_still_refused(tmp_path: Path) -> None:
    tb = make_tar(tmp_path / "p.tgz", ("hello", {"kind": tarfile.DIRTYPE}), ("hello/vcloud-launch", {}),
                  ("other/x", {}))
    with pytest.raises(UsageError, match="no vcloud-launch or vca-launch at the root"):
        prepare(tb, tmp_path / "cache")
    tb = make_tar(tmp_path / "q.tgz", ("a/b/vcloud-launch", {}))
    with pytest.raises(UsageError, match="no vcloud-launch or vca-launch at the root"):
        prepare(tb, tmp_path / "cache")


@pytest.mark.parametrize(("entry", "message"), [
    (("vcloud-launch", {"mode": 0o644}), "vcloud-launch in .* is not executable"),
    (("vcloud-launch", {"kind": tarfile.DIRTYPE}), "vcloud-launch in .* is a folder"),
    (("vcloud-launch", {"kind": tarfile.SYMTYPE, "link": "/bin/sh"}), "outside the package"),
    (("vcloud-launch", {"kind": tarfile.SYMTYPE, "link": "missing"}), "link to a missing file"),
    (("other", {}), "no vcloud-launch or vca-launch"),
])
def test_tarball_bad_launch(tmp_path: Path, entry: Entry, message: str) -> None:
    tb = make_tar(tmp_path / "p.tar", ("x/y", {}), entry)
    with pytest.raises(UsageError, match=message):
        prepare(tb, tmp_path / "cache")


def test_tarball_launch_hardlink_and_symlink_ok(tmp_path: Path) -> None:
    tb = make_tar(tmp_path / "p.tar", ("bin/start", {}), ("vcloud-launch", {"kind": tarfile.SYMTYPE,
                                                                            "link": "bin/start"}))
    assert prepare(tb, tmp_path / "c").launch == "vcloud-launch"
    tb = make_tar(tmp_path / "q.tar", ("bin/start", {}), ("vca-launch", {"kind": tarfile.LNKTYPE,
                                                                         "link": "bin/start"}))
    assert prepare(tb, tmp_path / "c").launch == "vca-launch"


def test_empty_tarballs(tmp_path: Path) -> None:
    (tmp_path / "zero.tar").write_bytes(b"")
    with pytest.raises(UsageError, match="is empty"):
        prepare(tmp_path / "zero.tar", tmp_path / "cache")
    only_dirs = make_tar(tmp_path / "dirs.tgz", ("./", {"kind": tarfile.DIRTYPE}),
                         ("d", {"kind": tarfile.DIRTYPE}))
    with pytest.raises(UsageError, match="is empty"):
        prepare(only_dirs, tmp_path / "cache")


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.xz"])
def test_corrupt_tarballs(tmp_path: Path, suffix: str) -> None:
    good = make_tar(tmp_path / f"good{suffix}", GOOD, ("big", {"data": os.urandom(100_000), "mode": 0o644}))
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(good.read_bytes()[:20_000])
    with pytest.raises(UsageError, match="unreadable or corrupt"):
        prepare(bad, tmp_path / "cache")
    (tmp_path / f"text{suffix}").write_text("this is not a tarball at all\n" * 40)
    with pytest.raises(UsageError, match="unreadable or corrupt"):
        prepare(tmp_path / f"text{suffix}", tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_tarball(tmp_path: Path) -> None:
    tb = make_tar(tmp_path / "p.tar", GOOD)
    tb.chmod(0)
    with pytest.raises(UsageError, match="cannot read tarball"):
        prepare(tb, tmp_path / "cache")


# --- mkpkg -------------------------------------------------------------------------------------------------


def test_mkpkg_default_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_pkg(tmp_path / "myapp")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    packed = mkpkg(src)
    assert packed.path == work / f"myapp-{packed.release_id}.tar.gz"
    assert packed.path.stat().st_mode & 0o777 == 0o644
    assert packed.release_id == sha12(packed.path) == prepare(src, tmp_path / "cache").release_id
    assert sorted(p.name for p in work.iterdir()) == [packed.path.name]
    # packing from inside the folder leaves earlier mkpkg outputs out: same id twice
    monkeypatch.chdir(src)
    first = mkpkg(Path("."))
    assert first.path == src / f"myapp-{packed.release_id}.tar.gz"
    assert mkpkg(Path(".")).release_id == packed.release_id
    # the tarball it makes is itself a valid package, sent as is
    assert prepare(packed.path, tmp_path / "cache2").release_id == packed.release_id


def test_mkpkg_out(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "myapp")
    assert mkpkg(src, tmp_path / "x.tgz").path == tmp_path / "x.tgz"
    (tmp_path / "outdir").mkdir()
    assert mkpkg(src, tmp_path / "outdir").path.parent == tmp_path / "outdir"
    with pytest.raises(UsageError, match="does not exist"):
        mkpkg(src, tmp_path / "nodir" / "x.tgz")
    with pytest.raises(UsageError, match="not a folder"):
        mkpkg(tmp_path / "x.tgz")


# --- examples/hello --------------------------------------------------------------------------------------


def test_hello_example_validates(tmp_path: Path) -> None:
    packed = prepare(HELLO, tmp_path / "cache")
    assert packed.launch == "vcloud-launch"
    assert "vcloud-launch" in names(packed.path)


def run_hello(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "VCA_NODE_INDEX": "1", "VCA_NUM_NODES": "3",
            "VCA_HEAD_IP": "10.1.0.10", "VCA_NODE_IPS": "10.1.0.10\n10.1.0.11\n10.1.0.12"}
    return subprocess.run([str(HELLO / "vcloud-launch")], cwd=cwd, env={**base, **env},
                          capture_output=True, text=True, timeout=10, check=False)


def test_hello_example_runs(tmp_path: Path) -> None:
    res = run_hello(tmp_path)
    assert (res.returncode, res.stdout) == (0, "hello from node 1 of 3\n")
    host = subprocess.run(["hostname"], capture_output=True, text=True, check=False).stdout.strip() \
        or os.uname().nodename
    assert (tmp_path / "result.txt").read_text() == (
        f"index=1\nnodes=3\nhead=10.1.0.10\nhostname={host}\nips=10.1.0.10,10.1.0.11,10.1.0.12\n")
    res = run_hello(tmp_path, GREETING="hi there", HELLO_EXIT="3")
    assert res.returncode == 3
    assert (tmp_path / "result.txt").read_text().endswith("greeting=hi there\n")


# --- issue 9: links through earlier links, mkpkg targets, private cache --------------------------------


def test_tarball_link_through_an_earlier_link(tmp_path: Path) -> None:
    # d -> a/b, then d/x -> ../../../../../../../etc: read by name, d/x stays inside; on the node it
    # is created in a/b, where those ".." lead to /etc
    tb = make_tar(tmp_path / "chain.tar.gz", GOOD, ("a/b", {"kind": tarfile.DIRTYPE}),
                  ("d", {"kind": tarfile.SYMTYPE, "link": "a/b"}),
                  ("d/x", {"kind": tarfile.SYMTYPE, "link": "../../../../../../../etc"}))
    with pytest.raises(UsageError, match=r"d/x .*inside the symlink d") as exc:
        prepare(tb, tmp_path / "cache")
    assert "chain.tar.gz" in exc.value.message
    assert not list((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("entry", [
    ("d/f", {"data": b"x", "mode": 0o644}),  # a file written through the link
    ("d/sub", {"kind": tarfile.DIRTYPE}),
    ("d/sub/y", {"kind": tarfile.SYMTYPE, "link": "../z"}),
    ("e/x", {"kind": tarfile.SYMTYPE, "link": "../lib"}),  # e -> d -> a/b: a chain of links
])
def test_tarball_member_below_a_link_refused(tmp_path: Path, entry: Entry) -> None:
    tb = make_tar(tmp_path / "p.tar", GOOD, ("a/b", {"kind": tarfile.DIRTYPE}),
                  ("d", {"kind": tarfile.SYMTYPE, "link": "a/b"}), ("e", {"kind": tarfile.SYMTYPE, "link": "d"}),
                  entry)
    with pytest.raises(UsageError, match="inside the symlink"):
        prepare(tb, tmp_path / "cache")


def test_tarball_link_chain_escaping_after_resolution(tmp_path: Path) -> None:
    tb = make_tar(tmp_path / "p.tar", GOOD, ("a/b", {"kind": tarfile.DIRTYPE}),
                  ("d", {"kind": tarfile.SYMTYPE, "link": "a/b"}),
                  ("e", {"kind": tarfile.SYMTYPE, "link": "d/../../.."}))
    with pytest.raises(UsageError, match=r"symlink e -> d/\.\./\.\./\.\. .* outside"):
        prepare(tb, tmp_path / "cache")
    # links to links that stay inside are still fine, and so is a link to a folder with no member below it
    ok = make_tar(tmp_path / "ok.tar", GOOD, ("a/b/f", {"data": b"x", "mode": 0o644}),
                  ("d", {"kind": tarfile.SYMTYPE, "link": "a/b"}), ("e", {"kind": tarfile.SYMTYPE, "link": "d/f"}))
    assert prepare(ok, tmp_path / "cache").launch == "vcloud-launch"


def test_tarball_link_chain_as_gnu_tar_unpacks_it(tmp_path: Path) -> None:
    """The same chain unpacked by the node's tar really lands outside: proof the refusal is needed."""
    tb = make_tar(tmp_path / "chain.tar", GOOD, ("a/b", {"kind": tarfile.DIRTYPE}),
                  ("d", {"kind": tarfile.SYMTYPE, "link": "a/b"}),
                  ("d/x", {"kind": tarfile.SYMTYPE, "link": "../../../outside"}))
    dest = tmp_path / "deep" / "rel"
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tb), "-C", str(dest), "--no-same-owner"], check=False, capture_output=True)
    landed = dest / "a" / "b" / "x"
    assert landed.is_symlink() and os.path.normpath(dest / "a" / "b" / os.readlink(landed)) == str(
        dest.parent / "outside")  # outside the release folder
    with pytest.raises(UsageError, match="inside the symlink"):
        prepare(tb, tmp_path / "cache")


def test_cache_dir_private_under_umask_0(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        packed = prepare(make_pkg(tmp_path / "pkg"), tmp_path / "state" / "clusters" / "c" / "releases")
    finally:
        os.umask(old)
    for folder in (tmp_path / "state", tmp_path / "state" / "clusters", packed.path.parent):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert packed.path.stat().st_mode & 0o077 == 0


def test_existing_world_writable_cache_dir_is_tightened(tmp_path: Path) -> None:
    cache = tmp_path / "releases"
    cache.mkdir()
    cache.chmod(0o777)
    prepare(make_pkg(tmp_path / "pkg"), cache)
    assert cache.stat().st_mode & 0o022 == 0


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "vcloud_ansible.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def one_error_line(res: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert res.returncode == code, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vca: error: ") and words in lines[0], res.stderr


def test_mkpkg_refuses_a_device(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    dev = tmp_path / "null"
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a /dev/null of our own
    res = cli("mkpkg", str(src), "-o", str(dev))
    one_error_line(res, 2, "not a regular file")
    assert os.path.exists(dev) and not dev.is_file() and dev.is_char_device()
    link = tmp_path / "link-to-null"
    link.symlink_to(dev)
    one_error_line(cli("mkpkg", str(src), "-o", str(link), "--force"), 2, "not a regular file")
    assert link.is_symlink() and dev.is_char_device()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link-to-null", "null", "pkg"]


@pytest.mark.parametrize("kind", ["fifo", "dir-named-like-output", "dangling-link"])
def test_mkpkg_refuses_other_non_regular_targets(tmp_path: Path, kind: str) -> None:
    src = make_pkg(tmp_path / "pkg")
    out = tmp_path / "out"
    out.mkdir()
    if kind == "fifo":
        target = out / "p.tar.gz"
        os.mkfifo(target)
    elif kind == "dangling-link":
        target = out / "l.tar.gz"
        target.symlink_to(out / "nowhere" / "x")
    else:  # -o FOLDER writes FOLDER/<name>-<id>.tar.gz: refuse when that name is a folder
        rid = prepare(src, tmp_path / "cache").release_id
        (out / f"pkg-{rid}.tar.gz").mkdir()
        target = out
    before = sorted(str(p) for p in out.rglob("*"))
    with pytest.raises(UsageError, match=r"not a regular file"):
        mkpkg(src, target, force=True)
    assert sorted(str(p) for p in out.rglob("*")) == before


def test_mkpkg_refuses_targets_inside_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_pkg(tmp_path / "pkg")
    launch = (src / "vcloud-launch").read_bytes()
    monkeypatch.chdir(src)
    res = cli("mkpkg", ".", "-o", "vcloud-launch", cwd=src)
    one_error_line(res, 2, "inside the package folder")
    res = cli("mkpkg", ".", "-o", "vcloud-launch", "--force", cwd=src)
    one_error_line(res, 2, "inside the package folder")
    assert (src / "vcloud-launch").read_bytes() == launch and os.access(src / "vcloud-launch", os.X_OK)
    for target in (src / "new.tar.gz", src / "lib"):  # a new file, a subfolder (for the default name)
        with pytest.raises(UsageError, match="inside the package folder"):
            mkpkg(Path("."), target)
    assert sorted(p.name for p in src.rglob("*")) == ["data.txt", "lib", "run.py", "vcloud-launch"]
    # the default name in the package's own root stays allowed (it is never packed)
    assert mkpkg(Path(".")).path.parent == src


def test_mkpkg_existing_file_needs_force(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    out = tmp_path / "mine.tar.gz"
    out.write_text("precious")
    res = cli("mkpkg", str(src), "-o", str(out))
    one_error_line(res, 2, "already exists")
    assert "--force" in res.stderr and out.read_text() == "precious"
    res = cli("mkpkg", str(src), "-o", str(out), "--force")
    assert res.returncode == 0, res.stderr
    assert sha12(out) == prepare(src, tmp_path / "cache").release_id
    # the same bytes again: nothing is lost, no --force needed
    assert cli("mkpkg", str(src), "-o", str(out)).returncode == 0
    # a symlink to a regular file is that file: written through with --force, the link stays
    link = tmp_path / "link.tar.gz"
    link.symlink_to(out)
    out.write_text("precious")
    one_error_line(cli("mkpkg", str(src), "-o", str(link)), 2, "already exists")
    assert cli("mkpkg", str(src), "-o", str(link), "--force").returncode == 0
    assert link.is_symlink() and sha12(out) == prepare(src, tmp_path / "cache").release_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "link.tar.gz", "mine.tar.gz", "pkg"]


def test_mkpkg_read_only_target_folder(tmp_path: Path) -> None:
    src = make_pkg(tmp_path / "pkg")
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["chattr", "+i", str(ro)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i not available here")
    try:
        one_error_line(cli("mkpkg", str(src), "-o", str(ro / "x.tar.gz")), 3, "cannot write")
        one_error_line(cli("mkpkg", str(src), "-o", str(ro)), 3, "cannot write")
        assert list(ro.iterdir()) == []
    finally:
        subprocess.run(["chattr", "-i", str(ro)], check=False)


def test_mkpkg_failure_while_packing_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vcloud_ansible.release.package_pack as package_pack

    src = make_pkg(tmp_path / "pkg")
    out = tmp_path / "out.tar.gz"
    out.write_text("old")
    real_add, calls = package_pack._add, []

    def failing_add(tar: tarfile.TarFile, member: Any, mtime: int) -> None:
        calls.append(member.name)
        if len(calls) == 3:
            raise UsageError("cannot read something", "mid-pack")
        real_add(tar, member, mtime)

    monkeypatch.setattr(package_pack, "_add", failing_add)
    with pytest.raises(UsageError, match="cannot read something"):
        mkpkg(src, out, force=True)
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tar.gz", "pkg"]
