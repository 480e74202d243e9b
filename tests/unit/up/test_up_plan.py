"""The plan of `vca up` against fake clusters: node steps from counts, setup roles, the package only
when it or its environment changed, services through the services API (a fake that records calls)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vcloud_ansible.errors import UsageError
from vcloud_ansible.node import Node
from vcloud_ansible.release.inject import JobState
from vcloud_ansible.spec import ServiceSpec, parse_spec
from vcloud_ansible.state import ClusterRecord, ClusterState
from vcloud_ansible.up import make_plan, up
from vcloud_ansible.up.plan import UP_FILE, env_digest
from vcloud_ansible.up.services import ServiceHost, apply_services, service_changes

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Svc:  # as ServiceInfo: node is where it runs now, placement the node it was asked for
    name: str
    command: list[str]
    node: str | None = "x-2"
    failover: bool = True
    state: str = "running"
    placement: str = "any"


@dataclass
class Status:
    node: Node
    job: JobState | None


@dataclass
class FakeCluster:
    state: ClusterState
    count: int = 0
    provider: str = "local"
    setup: dict[str, list[str]] = field(default_factory=dict)
    release: str = ""
    running: list[Svc] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.state.name

    def exists(self) -> bool:
        return self.count > 0

    @property
    def record(self) -> ClusterRecord:
        return ClusterRecord(self.name, self.provider, {}, setup=self.setup)

    def nodes(self) -> list[Node]:
        return [Node(i, f"{self.name}-{i}", f"10.0.0.{i}", f"10.0.0.{i}") for i in range(self.count)]

    def status(self) -> list[Status]:
        return [Status(n, JobState(release=self.release)) for n in self.nodes()]

    def services(self) -> list[Svc]:
        return list(self.running)

    def add_service(self, name: str, command: list[str], *, node: str = "any", user: str | None = None,
                    cwd: str | None = None, failover: bool = True) -> None:
        self.calls.append(("add", name))
        # as the real one: the node asked for becomes its placement (a node's name); it runs somewhere
        self.running.append(Svc(name, command, "x-1", failover,
                                placement=node if node == "any" or not node.isdigit() else f"x-{node}"))

    def remove_service(self, name: str) -> None:
        self.calls.append(("remove", name))
        self.running = [s for s in self.running if s.name != name]


def _fake(tmp_path: Path, **kw: Any) -> FakeCluster:
    state = ClusterState("demo", tmp_path / "home")
    state.dir.mkdir(parents=True, exist_ok=True)
    return FakeCluster(state, **kw)


def _actions(plan: Any) -> list[str]:
    return [s.action for s in plan.steps]


def test_counts_make_node_steps(tmp_path: Path) -> None:
    assert _actions(make_plan(_fake(tmp_path), parse_spec({"nodes": 3}))) == ["create"]  # type: ignore[arg-type]
    assert _actions(make_plan(_fake(tmp_path, count=3), parse_spec({"nodes": 5}))) == ["add"]  # type: ignore[arg-type]
    plan = make_plan(_fake(tmp_path, count=5), parse_spec({"nodes": 2}))  # type: ignore[arg-type]
    assert _actions(plan) == ["remove"] and plan.total == 2 and "5 -> 2" in plan.steps[0].what
    assert make_plan(_fake(tmp_path, count=2), parse_spec({"nodes": 2})).steps == []  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="gives no node count"):
        make_plan(_fake(tmp_path), parse_spec({"provider": "local"}))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="uses provider 'ec2', the spec says 'local'"):
        make_plan(_fake(tmp_path, count=1, provider="ec2"), parse_spec({"provider": "local", "nodes": 1}))  # type: ignore[arg-type]


def test_setup_roles_added_and_forgotten(tmp_path: Path) -> None:
    fake = _fake(tmp_path, count=2, setup={"all": ["toolchain"]})
    plan = make_plan(fake, parse_spec({"nodes": 2, "setup": {"dev": ["toolchain"]}}))  # type: ignore[arg-type]
    assert [(s.action, s.detail) for s in plan.steps] == [
        ("setup", {"role": "toolchain", "on": "dev"}), ("forget-setup", {"role": "toolchain", "on": "all"})]


def test_package_injected_only_when_it_or_its_env_changed(tmp_path: Path) -> None:
    spec = parse_spec({"nodes": 2, "package": {"path": str(REPO / "examples" / "hello"), "env": {"A": "1"}}})
    fake = _fake(tmp_path, count=2)
    first = make_plan(fake, spec)  # type: ignore[arg-type]
    assert _actions(first) == ["inject"] and first.release
    fake.release = first.release or ""
    (fake.state.dir / UP_FILE).write_text(json.dumps({"release": first.release, "env": env_digest({"A": "1"})}))
    assert make_plan(fake, spec).steps == []  # type: ignore[arg-type]
    other_env = parse_spec({"nodes": 2, "package": {"path": str(REPO / "examples" / "hello"), "env": {"A": "2"}}})
    assert _actions(make_plan(fake, other_env)) == ["inject"]  # type: ignore[arg-type]
    fake.release = "0123456789ab"  # a node runs another release (someone injected by hand)
    assert _actions(make_plan(fake, spec)) == ["inject"]  # type: ignore[arg-type]


def test_services_step_through_the_api(tmp_path: Path) -> None:
    fake = _fake(tmp_path, count=1, running=[Svc("old", ["sleep", "9"]), Svc("web", ["a"]), Svc("db", ["d"])],
                 setup={"all": ["ha_cluster"]})
    assert isinstance(fake, ServiceHost)
    spec = parse_spec({"nodes": 1, "setup": {"all": ["ha_cluster"]}, "services": [{"name": "web", "command": "a"},
                                                {"name": "db", "command": "d", "node": "0"},
                                                {"name": "q", "command": ["q", "-x"], "failover": False}]})
    plan = make_plan(fake, spec)  # type: ignore[arg-type]
    assert [s.what for s in plan.steps] == ["remove service old", "remove service db", "add service db on 0: d",
                                            "add service q on any: q -x"]
    report = up(fake, spec)  # type: ignore[arg-type]
    assert report.steps == plan.steps
    assert fake.calls == [("remove", "old"), ("remove", "db"), ("add", "db"), ("add", "q")]
    assert sorted(s.name for s in fake.running) == ["db", "q", "web"]
    assert up(fake, spec).steps == []  # type: ignore[arg-type]


def test_service_changes_and_apply() -> None:
    want = (ServiceSpec("a", ("x",)), ServiceSpec("b", ("y",), failover=False))
    add, remove = service_changes(want, [Svc("a", ["x"]), Svc("b", ["y"]), Svc("c", ["z"])])
    assert [s.name for s in add] == ["b"] and remove == ["c", "b"]
    host = FakeCluster(ClusterState("x", Path("/nonexistent")))
    apply_services(host, add, ["c"])
    assert host.calls == [("remove", "c"), ("add", "b")]


def test_a_service_that_moved_is_still_the_same_and_a_node_index_names_its_placement() -> None:
    want = (ServiceSpec("a", ("x",)), ServiceSpec("p", ("y",), node="1"))
    # 'a' was asked for any node and runs on x-2 (failed over); 'p' was asked for x-1 and runs elsewhere
    have = [Svc("a", ["x"], node="x-2"), Svc("p", ["y"], node="x-0", placement="x-1")]
    assert service_changes(want, have) == ([], [])
    moved = (ServiceSpec("p", ("y",), node="2"),)
    add, remove = service_changes(moved, have[1:])
    assert [s.name for s in add] == ["p"] and remove == ["p"]


def test_spec_without_services_support_is_refused(tmp_path: Path) -> None:
    class NoServices:
        def __init__(self, fake: FakeCluster) -> None:
            self.f = fake

        def __getattr__(self, name: str) -> Any:
            if name in ("services", "add_service", "remove_service"):
                raise AttributeError(name)
            return getattr(self.f, name)

    cluster = NoServices(_fake(tmp_path, count=1))
    with pytest.raises(UsageError, match="this vca has no services yet"):
        make_plan(cluster, parse_spec({"nodes": 1, "setup": {"all": ["ha_cluster"]},  # type: ignore[arg-type]
                                       "services": [{"name": "w", "command": "x"}]}))


def test_services_need_ha_cluster_and_a_cluster_without_it_is_not_asked(tmp_path: Path) -> None:
    class Unasked(FakeCluster):
        def services(self) -> list[Svc]:
            raise AssertionError("a cluster without ha_cluster has no services to list")

    fake = Unasked(_fake(tmp_path, count=2).state, count=2)
    assert _actions(make_plan(fake, parse_spec({"nodes": 2}))) == []  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="the spec's setup has no ha_cluster"):
        make_plan(fake, parse_spec({"nodes": 2, "services": [{"name": "w", "command": "x"}]}))  # type: ignore[arg-type]
    first = make_plan(fake, parse_spec({"nodes": 2, "setup": {"all": ["ha_cluster"]},  # type: ignore[arg-type]
                                        "services": [{"name": "w", "command": "x"}]}))
    assert _actions(first) == ["setup", "add-service"]
