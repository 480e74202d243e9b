"""The node script, run with this machine's sh as the "node", through both transports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from collect_fixtures import NODE, local_shell

from vcloud_ansible.collect.layout import Layout
from vcloud_ansible.collect.manifest import Manifest
from vcloud_ansible.collect.node_script import Probe
from vcloud_ansible.collect.remote_path import RemoteSpec
from vcloud_ansible.collect.transport import collect_node, collect_node_ssh


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


def test_probe_parse() -> None:
    out = "host=n-1\0tmp=/t\0base=/r\0root=/r/x\0file=" + "a" * 64 + "  /r/x/we\nird\0link=/r/x/l\0done=1\0"
    p = Probe.parse(out)
    assert (p.host, p.base, p.roots, p.links, p.complete) == ("n-1", "/r", ["/r/x"], ["/r/x/l"], True)
    assert p.files == {"/r/x/we\nird": "a" * 64}
    assert Probe.parse("error=nothing matches x\0").error == "nothing matches x"


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
