"""The inject session: its report, and its handshake run for real in a local shell standing in for ssh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vcloud_ansible.release import contract
from vcloud_ansible.release import install as release
from vcloud_ansible.release.transport import _HANDSHAKE, converse

NODES = [contract.node_entry(0, "c-0", "10.0.0.2", "10.0.0.2", "head"),
         contract.node_entry(1, "c-1", "10.0.0.3", "10.0.0.3", "worker")]


def run_session(home: Path, script: bytes, tarball: Path, lie: int = 0) -> tuple[bool, str, int]:
    """One session against a local "node" (``sh`` in place of ssh, HOME = ``home``). ``lie``: announce
    that many bytes more than are sent (a connection that breaks mid-transfer)."""
    proc = subprocess.Popen(["sh", "-c", release.run_script_command(len(script))], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env={**os.environ, "HOME": str(home)})
    if not lie:
        sent, out = converse(proc, script, tarball, False)
        return sent, out, proc.wait()
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(script)
    proc.stdin.flush()
    first = proc.stdout.readline()
    proc.stdin.write(f"{tarball.stat().st_size + lie}\n".encode() + tarball.read_bytes())
    proc.stdin.close()
    return True, (first + proc.stdout.read()).decode(), proc.wait()


def handshake_only(rid: str, original: Path) -> bytes:
    """The session's handshake, then a check of what arrived instead of the install (which writes /etc)."""
    return (_HANDSHAKE.format(path=release.package_path('"$HOME"', rid), rid=rid)
            + f'cmp "$P" {original} && echo arrived=same\n').encode()


def test_report_parsing() -> None:
    ok = release.Report.parse("abc", True, 0, "agent=updated\nrelease=installed\nstopped=def\njob=started\nrun=2\n", "")
    assert ok.ok and ok.changed and ok.job == "started"
    assert ok.vca_report() == {"release_id": "abc", "sent": True, "via": "ssh", "job": "started", "job_release": "",
                               "other_settings": False, "job_exit": "", "stopped": "def", "run": "2"}
    quiet = release.Report.parse("abc", False, 0, "release=present\ncontract=same\njob=unchanged\n", "")
    assert quiet.ok and not quiet.changed
    bad = release.Report.parse("abc", False, 1, "error=unpacking failed: x\n", "")
    assert not bad.ok and bad.error_message() == "installing release abc failed: unpacking failed: x"
    late = release.Report.parse("abc", False, 1, "release=present\nerror=the job did not start: y\n", "")
    assert late.error_message() == "release abc is installed, but the job did not start: y"
    silent = release.Report.parse("abc", False, 2, "", "sh: boom\n")
    assert silent.errors == ["sh: boom"]
    s3 = release.Report.parse("abc", False, 0, "fetched=1\njob=busy\njob_release=old\n", "")
    assert s3.vca_report()["via"] == "s3" and s3.vca_report()["sent"] and "old" in s3.busy_message()


def test_contract_env_and_unknown_node() -> None:
    env = contract.contract_env(NODES, "c-1", "r1", "c")
    assert env["VCA_NODE_INDEX"] == "1" and env["VCA_HEAD_IP"] == "10.0.0.2" and env["VCA_ROLE"] == "worker"
    assert env["VCA_NODE_IPS"] == "10.0.0.2\n10.0.0.3" and env["VCA_NUM_NODES"] == "2"
    with pytest.raises(ValueError, match="c-9"):
        contract.contract_env(NODES, "c-9", "r1", "c")


def test_session_sends_the_package_only_when_the_node_lacks_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tarball = tmp_path / "pkg.tar"
    tarball.write_bytes(os.urandom(300_000) + b"\n\n0\n")  # newlines and digits: nothing in it is framing
    sent, out, rc = run_session(home, handshake_only("r1", tarball), tarball)
    assert (sent, rc) == (True, 0) and out.splitlines() == ["have=0", "arrived=same"], out

    (home / "vca" / "releases" / "r1").mkdir(parents=True)
    (home / "vca" / "incoming" / "r1.tar").unlink()
    sent, out, rc = run_session(home, handshake_only("r1", tarball), tarball)
    assert not sent and out.startswith("have=1") and not (home / "vca" / "incoming" / "r1.tar").exists()


def test_session_refuses_a_package_that_arrives_short(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tarball = tmp_path / "pkg.tar"
    tarball.write_bytes(os.urandom(5000))
    _, out, rc = run_session(home, handshake_only("r2", tarball), tarball, lie=100)
    report = release.Report.parse("r2", True, rc, out, "")
    assert rc == 1 and not report.ok and "arrived incomplete" in report.error_message()
    assert list((home / "vca" / "incoming").iterdir()) == []


def test_release_record_gives_new_nodes_what_every_node_has(tmp_path: Path) -> None:
    from vcloud_ansible.release.inject import JobOptions, ReleaseRecord

    path = tmp_path / "release.json"
    rec = ReleaseRecord()
    rec.add("aaa", "/a.tgz", "a", JobOptions(env={"X": "1"}), ["c-0", "c-1"], True)
    rec.add("bbb", "/b.tgz", "b", JobOptions(), ["c-0"], True)  # inject --node 0
    rec.save(path)
    rec = ReleaseRecord.load(path)
    wide = rec.cluster_wide(["c-0", "c-1"])
    assert wide is not None and wide.release_id == "aaa" and wide.options.env == {"X": "1"}
    rec.add("aaa", "/a.tgz", "a", JobOptions(env={"X": "2"}), ["c-2"], False, newest=False)
    assert [r.release_id for r in rec.releases] == ["aaa", "bbb"] and rec.releases[0].options.env == {"X": "1"}
    rec.add("bbb", "/b.tgz", "b", JobOptions(), ["c-1", "c-2"], True)  # completes bbb
    wide = rec.cluster_wide(["c-0", "c-1", "c-2"])
    assert wide is not None and wide.release_id == "bbb"
    rec.forget_nodes(["c-2"])  # a new node that reuses a removed node's name holds nothing
    assert rec.cluster_wide(["c-2"]) is None
    # The older format (one full inject) still reads, as a release every node had.
    path.write_text('{"release_id": "old", "tarball": "/o", "source": "o", "options": {}, "injected_at": 1}')
    old = ReleaseRecord.load(path).cluster_wide(["c-0"])
    assert old is not None and old.release_id == "old"


def test_job_settings_fingerprint() -> None:
    a = release.JobOptions(procs="2", env={"K": "v"})
    assert a.fingerprint() == release.JobOptions(procs="2", env={"K": "v"}, restart=True, grace=3).fingerprint()
    assert a.fingerprint() != release.JobOptions(procs="2", env={"K": "w"}).fingerprint()
    assert release.JobOptions(procs="2").fingerprint() != release.JobOptions(procs="2", mem_kb=1024).fingerprint()
