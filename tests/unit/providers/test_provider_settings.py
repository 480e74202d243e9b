"""Declared provider settings: the registry, the flags `vca provision` builds from every provider's
declarations, and the refusal of settings the cluster's provider does not take."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vcloud_ansible import providers
from vcloud_ansible.errors import UsageError
from vcloud_ansible.node import Node
from vcloud_ansible.providers import REGISTRY, check_settings, declared_settings, get_provider, provider_class
from vcloud_ansible.providers.settings import Setting, by_flag
from vcloud_ansible.state import ClusterState


class FakeProvider:
    """A provider that exists only in this test: it declares settings and is registered by name."""

    name = "fake"
    settings = (
        Setting("fake", "zone", "Where nodes live.", metavar="ZONE"),
        Setting("fake", "gpus", "GPUs per node.", kind="int", metavar="N", default=0),
        Setting("fake", "fast", "Go fast.", kind="bool"),
        Setting("fake", "labels", "Label; repeatable.", kind="map", metavar="K=V"),
        Setting("fake", "flavour", "Flavour.", kind="choice", choices=("plain", "spicy")),
        Setting("fake", "user", "Login user.", metavar="USER"),  # shared with ec2's --user
    )

    def check(self) -> None:
        pass

    def create(self, state: ClusterState, count: int, say: Any) -> list[Node]:
        return []

    def nodes(self, state: ClusterState) -> list[Node]:
        return []

    def destroy(self, state: ClusterState, indexes: list[int] | None, say: Any) -> list[Node]:
        return []

    def inventory_source(self, state: ClusterState) -> Path | None:
        return None


@pytest.fixture
def fake_registered() -> Iterator[None]:
    """FakeProvider in the registry, and `vca provision` rebuilt from it (then rebuilt without it)."""
    from vcloud_ansible.cli import lifecycle

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(REGISTRY, "fake", FakeProvider)
        mp.setattr(providers, "PROVIDERS", tuple(REGISTRY))
        importlib.reload(lifecycle)
        yield
    importlib.reload(lifecycle)


def _refused(call: Any, *args: Any) -> str:
    """The one line a refusal renders as (message and hint)."""
    with pytest.raises(UsageError) as info:
        call(*args)
    return info.value.one_line()


def _invoke(argv: list[str], env: dict[str, str] | None = None) -> Any:
    from vcloud_ansible.cli.main import cli

    return CliRunner().invoke(cli, argv, env=env or {}, catch_exceptions=False)


def test_registry_names_classes_and_settings() -> None:
    assert providers.PROVIDERS == ("local", "ec2", "static")
    assert provider_class("local").settings == ()
    assert get_provider("ec2").name == "ec2"
    ec2 = provider_class("ec2").settings
    assert [s.provider for s in ec2] == ["ec2"] * len(ec2)
    assert declared_settings() == ec2 + provider_class("static").settings
    assert _refused(get_provider, "gce") == "unknown provider 'gce': choose one of: local, ec2, static"


def test_declared_flags_do_not_clash() -> None:
    flags = by_flag(declared_settings())  # raises when two providers declare one flag differently
    assert not {"--provider", "--total", "--spec", "--help"} & set(flags)
    with pytest.raises(ValueError, match="providers ec2 and fake declare --user differently"):
        by_flag([*declared_settings(), Setting("fake", "user", "Login user.", kind="int")])
    with pytest.raises(ValueError, match=r"bad declaration of setting fake\.Zone"):
        Setting("fake", "Zone", "Where.")
    with pytest.raises(ValueError, match="bad declaration"):
        Setting("fake", "zone", "Where.", kind="choice")  # a choice without choices


def test_a_registered_provider_gets_its_flags(fake_registered: None, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _invoke(["provision", "--help"], env={"COLUMNS": "300"})
    text = " ".join(res.output.split())
    assert "[local|ec2|static|fake]" in text
    assert "--zone ZONE [fake] Where nodes live. (env VCA_FAKE_ZONE)" in text
    assert "--gpus N [fake] GPUs per node. Default: 0. (env VCA_FAKE_GPUS)" in text
    assert "--fast / --no-fast [fake] Go fast. (env VCA_FAKE_FAST)" in text
    assert "--label K=V [fake] Label; repeatable. (env VCA_FAKE_LABELS)" in text
    assert "--flavour [plain|spicy]" in text
    assert ("--user USER [ec2] Login user of the image (admin on Debian images). Default: admin. "
            "(env VCA_EC2_USER) [static] Login user of hosts that name none. Default: root. (env VCA_STATIC_USER) "
            "[fake] Login user. (env VCA_FAKE_USER)") in text
    assert "--region TEXT [ec2] AWS region" in text  # the other providers' flags stay

    calls: list[tuple[Any, ...]] = []

    def provision(self: Any, count: int | None, provider: str | None, say: Any, *, total: int | None,
                  settings: dict[str, Any] | None, **_: Any) -> list[Node]:
        calls.append((count, provider, total, settings))
        return []

    from vcloud_ansible.cluster import Cluster

    monkeypatch.setattr(Cluster, "provision", provision)
    monkeypatch.setattr(Cluster, "nodes", lambda self: [])
    res = _invoke(["-c", "f", "provision", "--provider", "fake", "--zone", "z1", "--gpus", "2", "--label",
                      "a=b", "--label", "c=d", "--flavour", "spicy", "3"],
                     env={"VCA_FAKE_FAST": "1", "VCA_FAKE_USER": "me"})
    assert res.exit_code == 0, res.output
    assert calls == [(3, "fake", None, {"zone": "z1", "gpus": 2, "labels": ("a=b", "c=d"), "flavour": "spicy",
                                        "fast": True, "user": "me"})]


def test_spec_sections_and_schema_follow_the_registry(fake_registered: None) -> None:
    from vcloud_ansible.spec import json_schema, parse_spec

    got = parse_spec({"provider": "fake", "fake": {"zone": "z", "gpus": "4", "labels": {"a": 1}}})
    assert got.settings == {"zone": "z", "gpus": 4, "labels": {"a": "1"}}
    assert _refused(parse_spec, {"fake": {"region": "eu-west-1"}}) == (
        "spec: unknown fake setting region: known: zone, gpus, fast, labels, flavour, user")
    with pytest.raises(UsageError, match=r"spec: fake\.flavour must be one of plain, spicy, got 'hot'"):
        parse_spec({"fake": {"flavour": "hot"}})
    assert list(json_schema()["properties"]["fake"]["properties"]) == [s.key for s in FakeProvider.settings]


def test_settings_for_another_provider_are_refused(fake_registered: None) -> None:
    assert _refused(check_settings, "local", {"region": "eu-west-1", "tags": ("a=b",)}) == (
        "provider 'local' takes no settings (--region, --tag): those options apply to provider ec2")
    assert _refused(check_settings, "local", {"zone": "z", "user": "me"}) == (
        "provider 'local' takes no settings (--user, --zone): those options apply to providers ec2, fake, static")
    assert _refused(check_settings, "local", {"colour": "blue"}) == "provider 'local' takes no settings (--colour)"
    assert _refused(check_settings, "ec2", {"zone": "z", "region": "eu-west-1"}).startswith(
        "unknown ec2 setting zone: known: region, image, ")
    check_settings("local", {})
    check_settings("fake", {"zone": "z", "user": "me"})


@pytest.mark.parametrize(("kind", "value", "typed"), [
    ("int", 5, 5), ("int", " 42 ", 42), ("bool", "YES", True), ("bool", "off", False), ("bool", 0, False),
    ("bool", True, True), ("list", "a  b", ["a", "b"]), ("list", ("a", 7), ["a", "7"]), ("list", [], []),
    ("map", {"a": 1, "b": True}, {"a": "1", "b": "True"}), ("map", "a=1 b=", {"a": "1", "b": ""}),
    ("map", ["a=x=y"], {"a": "x=y"}), ("str", " t3.micro ", "t3.micro"), ("str", 136693071363, "136693071363"),
    ("str", Path("/tmp/init.sh"), "/tmp/init.sh"),
])
def test_values_are_coerced_to_the_declared_kind(kind: str, value: Any, typed: Any) -> None:
    assert Setting("p", "x", "X.", kind=kind).coerce(value) == typed


@pytest.mark.parametrize(("kind", "value", "words"), [
    ("int", "1.5", "--x must be a whole number, got '1.5'"), ("int", False, "whole number, got 'False'"),
    ("bool", "maybe", "--x must be true or false, got 'maybe'"), ("bool", 2, "true or false"),
    ("list", {"a": 1}, "--x must be a list of values"), ("list", [None], "list of values"),
    ("map", ["novalue"], "invalid x 'novalue': use KEY=VALUE"), ("map", {"a": [1]}, "single values"),
    ("map", 5, "KEY=VALUE pairs or a mapping"), ("str", True, "--x must be a single value, got 'True'"),
    ("str", None, "single value"),
])
def test_values_of_another_kind_are_refused(kind: str, value: Any, words: str) -> None:
    with pytest.raises(UsageError) as info:
        Setting("p", "x", "X.", kind=kind).coerce(value)
    assert words in info.value.one_line()
