"""The job environment on real lab nodes: values arrive byte for byte through `vca inject -e` and
`vca run inject job_env=...`; names the shell cannot export are refused; `vca run` values stay out of
the run artifacts (issue 9)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from helpers import vca

pytestmark = pytest.mark.lab

# What YAML used to turn into 1.1, 493, True, 750, 31, 1000, None and a folded line.
VALUES = {
    "V": "1.10", "O": "0755", "Y": "yes", "T": "12:30", "H": "0x1F", "U": "1_000", "N": "null", "E": "",
    "M": "line one\nline two\n  three 'single' \"double\" $HOME `id` \\n \\back ü 日本 {{ 7*7 }} #no comment\n",
}
SENTINEL = "vca-run-Secret-4b1f9e"


def make_pkg(root: Path, marker: str) -> Path:
    root.mkdir(parents=True)
    lines = ["#!/bin/sh", "set -e"]
    lines += [f'printf %s "${name}" > env.{name}' for name in VALUES]
    lines += ['printf %s "${S-unset}" > env.S', f"echo {marker}"]
    script = root / "vcloud-launch"
    script.write_text("\n".join(lines) + "\n")
    script.chmod(0o755)
    return root


def arrived(cluster: str) -> dict[str, str]:
    """Each variable as the job saw it, read back as base64 so no byte is lost on the way."""
    cmd = "cd ~/vca/current && for f in env.*; do printf '%s=' \"${f#env.}\"; base64 -w0 \"$f\"; echo; done"
    out = vca("-c", cluster, "exec", "--node", "0", "--", cmd).stdout
    got = {}
    for line in out.splitlines():
        key, _, b64 = line.split(": ", 1)[-1].partition("=")
        got[key] = base64.b64decode(b64).decode()
    return got


def release_of(cluster: str) -> str:
    return str(json.loads(vca("-c", cluster, "status", "--json").stdout)[0]["release"])


def test_env_values_arrive_byte_for_byte_through_both_paths(cluster_name: str, tmp_path: Path,
                                                            vca_home: Path) -> None:
    c = cluster_name
    vca("-c", c, "provision", "1")
    pkg = make_pkg(tmp_path / "a", "first")
    args = [a for k, v in VALUES.items() for a in ("-e", f"{k}={v}")]
    vca("-c", c, "inject", str(pkg), *args)
    vca("-c", c, "wait", "--timeout", "60")
    assert arrived(c) == {**VALUES, "S": "unset"}

    # Refused before anything happens: names the shell cannot export, contract names, tiny --mem.
    before = (release_of(c), vca("-c", c, "exec", "--", "ls ~/vca/releases ~/vca/jobs").stdout)
    for bad, words in ((["-e", "ÜNI=x"], "cannot be exported"), (["-e", "VCA_NODE_INDEX=7"], "reserved"),
                       (["--mem", "100"], "under 1 KiB")):
        res = vca("-c", c, "inject", str(pkg), *bad, "--restart", check=False)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("vca: error: "), res.stderr
        assert words in lines[0] and "Traceback" not in res.stderr
    assert (release_of(c), vca("-c", c, "exec", "--", "ls ~/vca/releases ~/vca/jobs").stdout) == before

    # The playbook path: job_env as JSON text, never templated nor retyped; a vca run value is a secret
    # that must not stay in runs/.
    pkg2 = make_pkg(tmp_path / "b", "second")
    job_env = json.dumps({**VALUES, "S": SENTINEL})
    vca("-c", c, "run", "inject", f"pkg={pkg2}", f"job_env={job_env}", "restart=true", f"note={SENTINEL}")
    vca("-c", c, "wait", "--timeout", "60")
    assert release_of(c) != before[0]
    assert arrived(c) == {**VALUES, "S": SENTINEL}
    runs = vca_home / "clusters" / c / "runs"
    files = [p for p in runs.rglob("*") if p.is_file()]
    assert any(p.name == "command" for p in files)
    leaks = [str(p) for p in files if SENTINEL.encode() in p.read_bytes()]
    assert leaks == []
    # a value YAML would retype is refused on the playbook path too, with the hint to quote it
    res = vca("-c", c, "run", "inject", f"pkg={pkg2}", "job_env={O: 0755}", check=False)
    assert res.returncode != 0 and "not text" in res.stderr, res.stderr
    assert os.path.isdir(runs)
