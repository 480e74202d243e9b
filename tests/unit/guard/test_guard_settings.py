"""The guard's settings: durations, defaults per provider, the node's settings file, status parsing."""

from __future__ import annotations

import pytest

from vcloud_ansible.errors import UsageError
from vcloud_ansible.guard.apply import GuardChange
from vcloud_ansible.guard.node import GuardState
from vcloud_ansible.guard.settings import GuardSettings, conf_text, describe, parse_duration, parse_lifetime
from vcloud_ansible.guard.show import guard_cell
from vcloud_ansible.node import Node


@pytest.mark.parametrize(("text", "seconds"), [("20s", 20), ("30m", 1800), ("2h", 7200), ("1d", 86400),
                                                ("45", 45), ("0", 0), ("off", 0), (" 5m ", 300)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "says"), [("-5m", "negative"), ("5x", "invalid"), ("m", "invalid"),
                                             ("1.5h", "invalid"), ("400d", "longer than a year"), ("", "invalid")])
def test_bad_durations(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_duration(text)


def test_lifetime_is_from_now_with_or_without_plus() -> None:
    assert parse_lifetime("+4h") == parse_lifetime("4h") == 14400
    assert parse_lifetime("0") == 0
    with pytest.raises(UsageError, match="negative lifetime"):
        parse_lifetime("-1h")


def test_defaults_per_provider_and_stored_values_win() -> None:
    ec2 = GuardSettings.of("ec2", None)
    assert (ec2.idle_stop, ec2.idle_action, ec2.expires_at) == (3600, "stop", None)
    lab = GuardSettings.of("local", {})
    assert (lab.idle_stop, lab.expires_at) == (0, 0.0)
    stored = GuardSettings.of("ec2", {"idle_stop": 60, "idle_action": "terminate", "unknown": 1})
    assert (stored.idle_stop, stored.idle_action) == (60, "terminate")


def test_change_applies_only_what_was_given() -> None:
    base = GuardSettings.of("ec2", None)
    out = GuardChange.parse(idle_stop="30m").applied_to(base, now=1000.0)
    assert (out.idle_stop, out.idle_action, out.expires_at) == (1800, "stop", None)
    out = GuardChange.parse(lifetime="+1h", idle_action="terminate").applied_to(base, now=1000.0)
    assert (out.idle_stop, out.idle_action, out.expires_at) == (3600, "terminate", 4600.0)
    assert GuardChange.parse(lifetime="0").applied_to(base, now=1000.0).expires_at == 0.0
    with pytest.raises(UsageError, match="invalid idle action 'pause'"):
        GuardChange.parse(idle_action="pause")


def test_conf_has_each_nodes_expiry_and_spot_flag_by_address() -> None:
    nodes = [Node(0, "c-0", "a", "10.0.0.1", expires_at=5000.0),
             Node(1, "c-1", "b", "10.0.0.2", details={"lifecycle": "spot"})]
    text = conf_text(GuardSettings.of("ec2", None), "c", nodes)
    assert "idle_stop=3600" in text and "expires_at@10.0.0.1=5000" in text and "expires_at@10.0.0.2=0" in text
    assert "spot@10.0.0.2=1" in text and "spot@10.0.0.1" not in text
    whole = conf_text(GuardSettings(expires_at=7000.0), "c", nodes)
    assert "expires_at=7000" in whole and "expires_at@" not in whole


def test_status_lines_parse_and_render() -> None:
    g = GuardState.parse("release=x\nguard=watching\nguard_idle_stop=1800\nguard_idle_action=stop\n"
                         "guard_expires_at=10000\nguard_idle_for=60\nguard_busy=\nguard_now=6400\n")
    assert g is not None and g.idle_left() == 1740 and g.life_left() == 3600
    assert guard_cell(g) == "idle 1m of 30m, 1h left"
    busy = GuardState.parse("guard=watching\nguard_idle_stop=60\nguard_busy=ssh\nguard_now=1\n")
    assert busy is not None and guard_cell(busy) == "busy (ssh)"
    assert GuardState.parse("release=x\n") is None
    assert "expired" in guard_cell(GuardState("expired"))
    assert describe(GuardSettings(idle_stop=1800, expires_at=0.0)) == "idle stop after 30m (stop), no lifetime"


def test_a_node_with_nothing_to_watch_needs_no_service() -> None:
    nodes = [Node(0, "c-0", "a", "10.0.0.1")]
    assert "active=0" in conf_text(GuardSettings.of("local", None), "c", nodes)
    assert "active=1" in conf_text(GuardSettings(idle_stop=60, expires_at=0.0), "c", nodes)
    assert "active=1" in conf_text(GuardSettings(expires_at=9.0), "c", nodes)
    assert "active=1" in conf_text(GuardSettings(expires_at=0.0, spot_watch="on"), "c", nodes)
    tagged = [Node(0, "c-0", "a", "10.0.0.1", expires_at=5000.0)]
    assert "active=1" in conf_text(GuardSettings.of("ec2", {"idle_stop": 0}), "c", tagged)
    assert "active=0" in conf_text(GuardSettings.of("ec2", {"idle_stop": 0}), "c", nodes)
