"""The lab's apt proxy configuration and the apt settings its nodes get (no proxy is started here)."""

from __future__ import annotations

import time
from pathlib import Path

from vcloud_ansible.lab import aptproxy
from vcloud_ansible.lab.hostinfo import AptSource

SOURCES = [
    AptSource("http://mirror.example/debian", ("bookworm", "bookworm-updates"), ("main",)),
    AptSource("http://mirror.example/debian-security/", ("bookworm-security",), ("main",)),
]
HOST_CONF = (
    "CacheDir: /var/cache/apt-cacher-ng\n"
    "Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian # Debian Archives\n"
    "Remap-secdeb: sec.example sec.example/debian-security /debian-security ; sec.example/debian-security\n"
    "ExThreshold: 4\n"
)


def _template(tmp_path: Path, conf: str = HOST_CONF) -> Path:
    d = tmp_path / "etc-acng"
    d.mkdir()
    (d / "acng.conf").write_text(conf)
    (d / "backends_debian.default").write_text("http://elsewhere.example/debian/\n")
    return d


def test_backends_come_from_the_host_sources_security_apart(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    aptproxy.write_config(conf, SOURCES, template=_template(tmp_path))
    assert (conf / "backends_debian").read_text() == "http://mirror.example/debian/\n"
    assert (conf / "backends_debian_security").read_text() == "http://mirror.example/debian-security/\n"
    lines = (conf / "acng.conf").read_text().splitlines()
    # The security rule keeps the URLs it matched and adds the nodes' own; its backends are the host's.
    assert lines[2] == ("Remap-secdeb: sec.example sec.example/debian-security /debian-security "
                        "mirror.example/debian-security ; file:backends_debian_security")
    assert [lines[i] for i in (0, 1, 3)] == [HOST_CONF.splitlines()[i] for i in (0, 1, 3)]


def test_a_config_without_a_security_rule_gets_one(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    aptproxy.write_config(conf, SOURCES, template=_template(tmp_path, "CacheDir: /x\n"))
    assert (conf / "acng.conf").read_text() == (
        "CacheDir: /x\nRemap-secdeb: mirror.example/debian-security ; file:backends_debian_security\n"
    )


def test_without_security_sources_the_host_config_is_kept(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "stale").write_text("from an earlier start")
    aptproxy.write_config(conf, SOURCES[:1], template=_template(tmp_path))
    assert (conf / "acng.conf").read_text() == HOST_CONF
    assert not (conf / "backends_debian_security").exists() and not (conf / "stale").exists()


def test_items_not_yet_downloading_are_never_taken_for_stuck_ones() -> None:
    """apt-cacher-ng 3.7 displaces a volatile item whose download has not started once now exceeds
    0 + ResponseFreezeDetectTime: the value must lie beyond the clock and fit its int option."""
    cmd = aptproxy.command(Path("/c"), Path("/b"), "10.0.0.1", 3142)
    options = dict(arg.split("=", 1) for arg in cmd[3:])
    assert cmd[:3] == ["apt-cacher-ng", "-c", "/c"]
    assert time.time() + 365 * 86400 < int(options["ResponseFreezeDetectTime"]) <= 2**31 - 1
    assert options["BindAddress"] == "10.0.0.1" and options["Port"] == "3142"
    assert options["CacheDir"] == "/b/cache" and options["LogDir"] == "/b/log"


def test_nodes_retry_at_once_and_time_out() -> None:
    conf = aptproxy.node_apt_conf("http://10.0.0.1:3142")
    settings = dict(
        line.rstrip(";").split(" ", 1) for line in conf.splitlines() if line and not line.startswith("//")
    )
    assert settings == {
        "Acquire::http::Proxy": '"http://10.0.0.1:3142"',
        "Acquire::http::Timeout": '"20"',
        "Acquire::Retries": '"5"',
        "Acquire::Retries::Delay": '"false"',
    }
