"""`vca jobs check`: a job CSV checked against the provider's instance types without making anything;
for ec2, EC2 itself (a moto server) says which types exist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import vca
from moto_fixtures import MotoServer, moto, moto_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.aws

CSV = 'name,instance_type,command,env\nx,t3.micro,"echo ""a, b""\necho c",K=v\ny,c5.large,true,\n'


def test_check_against_ec2_types(moto: MotoServer, tmp_path: Path, vca_home: Path) -> None:  # noqa: F811
    ok = tmp_path / "ok.csv"
    ok.write_text(CSV)
    rows = json.loads(vca("jobs", "check", str(ok), "--provider", "ec2", "--json").stdout)
    assert [(r["name"], r["instance_type"], r["line"]) for r in rows] == [("x", "t3.micro", 2), ("y", "c5.large", 4)]
    assert rows[0]["command"] == 'echo "a, b"\necho c' and rows[0]["env"] == {"K": "v"}
    assert moto.calls()["DescribeInstanceTypes"] >= 2  # EC2 itself was asked

    bad = tmp_path / "bad.csv"
    bad.write_text(CSV + "z,t3.nonesuch,true,\n")
    res = vca("jobs", "check", str(bad), "--provider", "ec2", check=False)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"vca: error: {bad}:5: instance type 't3.nonesuch' does not exist in region us-east-1: "
        "give an instance type such as t3.micro or c5.large"], res.stderr
    # The lab's own list agrees on these; nothing was made anywhere.
    assert "2 jobs, all well formed" in vca("jobs", "check", str(ok)).stderr
    assert not (vca_home / "clusters").exists()
