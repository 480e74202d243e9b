"""The Python API: one named cluster and what can be done with it.

    from vcloud_ansible.cluster import Cluster
    c = Cluster("demo")
    c.provision(4)                        # nodes 0-3 (local lab by default)
    for r in c.exec("hostname"): print(r.node.index, r.stdout)
    c.run("inject", {"pkg": "examples/hello"})
    c.teardown()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NodeNotFound, RemoteFailed, UsageError, VcaError
from .node import IndexRanges, Node, check_role, for_new_nodes
from .providers import Provider, get_provider
from .providers.base import Configurable, Say, Verifiable
from .release.inject import STATUS_COMMAND, JobState, reinject_current
from .remote import access
from .remote import ssh as sshexec
from .state import ClusterSpec, ClusterState, current_cluster_name
from .storage import init_script
from .storage.init_script import InitState

if TYPE_CHECKING:
    from rich.console import Console

    from .playbook.runner import RunResult
    from .setup.stage import SetupRun

DEFAULT_PROVIDER = "local"


def _quiet(_msg: str) -> None:
    pass


@dataclass
class NodeStatus:
    node: Node
    state: str  # up | unreachable | down | <provider state>
    uptime: float | None  # seconds since the node's init started, as the node reports it
    job: JobState | None = None  # release and job, as the node's agent reports them
    init: InitState | None = None  # the user's init script, where it ran (storage.init_script)


@dataclass
class _ProvisionPlan:
    """What a provision will do, checked before anything is made."""

    prov: Provider
    existed: bool
    count: int
    stored: dict[str, Any]
    to_store: dict[str, Any]
    before: list[Node]  # the cluster's nodes before this run
    role: str | None  # of the new nodes (None: by index)
    setup_before: dict[str, list[str]]
    setup_after: dict[str, list[str]]
    nothing_to_add: bool = False


class Cluster:
    def __init__(self, name: str | None = None, home: Path | None = None) -> None:
        self.state = ClusterState(current_cluster_name(name), home)
        self.name = self.state.name

    # -- spec and provider ---------------------------------------------------------------------
    @property
    def spec(self) -> ClusterSpec:
        return self.state.load()

    @property
    def provider(self) -> Provider:
        return get_provider(self.spec.provider)

    def exists(self) -> bool:
        return self.state.exists()

    # -- nodes ---------------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        """The nodes as the provider sees them now; refreshes inventory and ssh_config."""
        nodes = self.provider.nodes(self.state)
        access.write_access_files(self.state, nodes)
        return nodes

    def select(self, indexes: Sequence[int] | None = None, nodes: list[Node] | None = None) -> list[Node]:
        """The nodes with these indexes (all when none); ``nodes``: the cluster's, when already listed."""
        nodes = self.nodes() if nodes is None else nodes
        if not indexes:
            return nodes
        by_index = {n.index: n for n in nodes}
        if isinstance(indexes, IndexRanges):  # checked against the nodes, never expanded
            missing = indexes.missing(by_index)
            indexes = indexes.within(by_index)
        else:
            missing = [str(i) for i in indexes if i not in by_index]
        if missing:
            have = index_ranges(sorted(by_index)) or "none"
            raise NodeNotFound(
                f"cluster '{self.name}' has no node {', '.join(missing)} (nodes: {have})",
                "see `vca status`",
            )
        return [by_index[i] for i in dict.fromkeys(indexes)]

    # -- verbs ---------------------------------------------------------------------------------
    def provision(self, count: int | None = 1, provider: str | None = None, say: Say = _quiet, *,
                  total: int | None = None, settings: dict[str, Any] | None = None, role: str | None = None,
                  setup: Mapping[str, Sequence[str]] | None = None, console: Console | None = None) -> list[Node]:
        """Add ``count`` nodes with the next free indexes (creating the cluster on first use).

        With ``total``, converge instead: add only the nodes the cluster lacks to have ``total``
        (never removes any), so running it again adds nothing. ``settings`` override the provider
        settings stored with the cluster (provider ec2: region, image, ...). ``role``: of the new
        nodes, head, worker or dev (default: node 0 head, others worker; at most one head).
        ``setup`` names setup roles ({"all"|"head"|"worker"|"dev": [role, ...]}); the new nodes get
        the cluster's setup roles once they accept SSH, before anything else reaches them.
        """
        if total is not None and total < 1:
            raise UsageError(f"--total must be at least 1, got {total}")
        if total is None and (count is None or count < 1):
            raise UsageError(f"node count must be at least 1, got {count}")
        settings = dict(settings or {})
        role = role or settings.pop("role", None)  # a spec file may give it as an ec2 setting
        check_role(role)
        # Checked before the lock is taken, so that refused input leaves nothing behind (not even a lock
        # file); checked again under the lock when another command created or removed the cluster.
        plan = self._plan(count, provider, say, total, settings, role, setup)
        with self.state.lock("provision", say):
            if self.exists() != plan.existed:
                plan = self._plan(count, provider, say, total, settings, role, setup)
            if plan.nothing_to_add:
                self._setup_new_nodes([], plan, say, console)
                return []
            return self._provision(plan, say, console)

    def _plan(self, count: int | None, provider: str | None, say: Say, total: int | None,
              settings: dict[str, Any], role: str | None, setup: Mapping[str, Sequence[str]] | None
              ) -> _ProvisionPlan:
        from .setup import settings as setup_settings  # here, not at the top: every command imports cluster

        existed = self.exists()
        setup_before = self.spec.setup if existed else {}
        setup_after = setup_settings.merged(setup_before, setup)  # every role checked before anything is made
        if existed:
            spec = self.spec
            if provider and provider != spec.provider:
                raise UsageError(
                    f"cluster '{self.name}' uses provider '{spec.provider}', not '{provider}'",
                    "leave out --provider, or pick another cluster name with -c",
                )
            prov = get_provider(spec.provider)
        else:
            prov = get_provider(provider or DEFAULT_PROVIDER)
        prov.check()
        before = prov.nodes(self.state) if existed else []
        plan = _ProvisionPlan(prov, existed, 0, {}, {}, before, None, setup_before, setup_after)
        if total is not None:
            have = len(before)
            # A provider with settings (ec2) converges even with nothing to add: it repairs drift and
            # completes nodes an interrupted run left unfinished.
            if have >= total and not isinstance(prov, Configurable):
                say(f"cluster '{self.name}' has {have} node{'s' if have != 1 else ''}: nothing to add")
                plan.nothing_to_add = True
                return plan
            count = max(0, total - have)
        assert count is not None
        plan.count = count
        plan.role = for_new_nodes(self.name, role, count, before)  # refuses a second head
        plan.stored = self.spec.settings if existed else {}
        if isinstance(prov, Configurable):
            # Checked against the provider before anything is made, here or there. The role of the new
            # nodes is one of the provider's per-run settings (ec2: the vca:role tag).
            plan.to_store = prov.prepare(plan.stored, {**settings, **({"role": plan.role} if plan.role else {})},
                                         creating=not existed)
        elif settings:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in sorted(settings))
            raise UsageError(f"provider '{prov.name}' takes no settings ({flags})",
                             "those options apply to provider ec2")
        else:
            plan.to_store = plan.stored
        return plan

    def _provision(self, plan: _ProvisionPlan, say: Say, console: Console | None) -> list[Node]:
        prov, existed, count, stored, to_store = plan.prov, plan.existed, plan.count, plan.stored, plan.to_store
        if not existed:
            self.state.create(prov.name, to_store)
        elif to_store != stored:
            self.state.save(ClusterSpec(**{**asdict(self.spec), "settings": to_store}))
        try:
            new = prov.create(self.state, count, say, plan.role)
        except BaseException:
            self._forget_if_new_and_empty(prov, existed)
            raise
        try:
            current = {n.index: n for n in prov.nodes(self.state)}
            for n in new:  # the host keys learnt at creation
                if n.index in current:
                    current[n.index].host_key = n.host_key
            access.write_access_files(self.state, sorted(current.values(), key=lambda n: n.index))
            if new:
                say(f"waiting for SSH on {len(new)} node{'s' if len(new) != 1 else ''}")
            sshexec.wait_ready(self.state, new)
        except (VcaError, KeyboardInterrupt) as exc:  # all of them or none: remove what this run made
            if isinstance(exc, KeyboardInterrupt):
                say(f"interrupted: removing the {len(new)} new node{'s' if len(new) != 1 else ''}")
            prov.destroy(self.state, [n.index for n in new], say)
            if not self._forget_if_new_and_empty(prov, existed):
                self.nodes()  # the access files without the removed nodes
            raise
        # The setup stage, on the new nodes only; a failed role leaves them in place for `vca setup`.
        self._setup_new_nodes(new, plan, say, console)
        if existed and new:  # nodes added after an inject get the release the cluster runs and start it
            self._grow(new, say)
        return new

    def _setup_new_nodes(self, new: list[Node], plan: _ProvisionPlan, say: Say, console: Console | None) -> None:
        """Store the setup roles this provision named, then run the setup stage on the new nodes."""
        from .setup import settings as setup_settings
        from .setup import stage as setup_stage

        if plan.setup_after != plan.setup_before:
            self.state.save(replace(self.spec, setup=plan.setup_after))
        setup_stage.after_provision(self.state, lambda: self.inventory_path(refresh=False), plan.setup_after, new,
                                    plan.before, setup_settings.added(plan.setup_before, plan.setup_after), say,
                                    console)

    def _grow(self, new: list[Node], say: Say) -> None:
        growth = reinject_current(self, new)
        names = index_ranges(sorted(n.index for n in new))
        which = f"node{'s' if len(new) != 1 else ''} {names}"
        if growth.result is not None:
            growth.result.raise_for_failures(f"handing release {growth.release_id} to the new nodes")
            say(f"new {which}: release {growth.release_id} (the newest release every other node received) "
                "installed and started; the other nodes keep their releases and jobs")
        elif growth.recorded:
            say(f"new {which}: no release (none reached every other node yet); give them one with "
                f"`vca inject PKG --node {names.replace(' ', '')}`")
        if growth.contract_failed:
            raise RemoteFailed.naming("refreshing the node list", growth.contract_failed, growth.existing,
                                      "once they answer, the next `vca inject` gives them the node list")

    def _forget_if_new_and_empty(self, prov: Provider, existed: bool) -> bool:
        """After a failed provision: forget the cluster if this run created it and no node is left."""
        if existed or self._has_nodes(prov):
            return False
        self.state.forget()
        return True

    def _has_nodes(self, prov: Provider) -> bool:
        """Whether the provider shows nodes of the cluster, or (ec2) anything else of it, such as a
        security group a rollback could not delete; True when it cannot tell (keep the state)."""
        try:
            if isinstance(prov, Verifiable):
                return bool(prov.leftovers(self.state))
            return bool(prov.nodes(self.state))
        except VcaError:
            return True

    def teardown(self, say: Say = _quiet) -> list[Node]:
        """Remove every node and forget the cluster. Idempotent: a teardown that waited for another one
        finds nothing left and returns no nodes."""
        if not self.exists():
            return []
        with self.state.lock("teardown", say):
            if not self.exists():
                return []
            return self._teardown(say)

    def _teardown(self, say: Say) -> list[Node]:
        gone = self.provider.destroy(self.state, None, say)
        left = self.provider.nodes(self.state)
        if left:
            raise VcaError(
                f"teardown left {len(left)} node(s) of '{self.name}': {', '.join(n.name for n in left)}",
                "run `vca teardown` again; see `vca status`",
            )
        self.state.forget()
        return gone

    def destroy(self, purge: bool = False, say: Say = _quiet) -> bool:
        """Forget the cluster (its local state) once the provider shows that nothing of it is left.

        Refuses while nodes (or, for ec2, anything tagged with the cluster) exist: tear down first.
        With ``purge``, a cluster whose resources cannot be checked any more (credentials, region or
        endpoint gone) is forgotten anyway; one whose resources are still there is not.
        Returns False when there was no such cluster.
        """
        if not self.exists():
            return False
        try:
            prov = self.provider
            left = [f"node {n.name}" for n in prov.nodes(self.state)]
            if isinstance(prov, Verifiable):
                left = prov.leftovers(self.state)
        except VcaError as exc:
            if not purge:
                raise VcaError(f"cannot check what is left of cluster '{self.name}': {exc.one_line()}",
                               "fix that, or forget it anyway with `vca destroy --purge`") from None
            say(f"cannot check cluster '{self.name}' ({exc.one_line()}); forgetting it (--purge)")
            left = []
        if left:
            shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
            raise UsageError(f"cluster '{self.name}' still has {len(left)} resource(s): {shown}",
                             "remove them with `vca teardown` first")
        self.state.forget()
        return True

    def status(self) -> list[NodeStatus]:
        nodes = self.nodes()
        live = [n for n in nodes if n.state == "running"]
        command = f"ps -o etimes= -p 1; {STATUS_COMMAND}; {init_script.STATUS_COMMAND}"
        probe = {r.node.index: r for r in sshexec.run_all(self.state, live, command, timeout=15)}
        out = []
        for n in nodes:
            r = probe.get(n.index)
            first = r.stdout.split("\n", 1)[0].strip() if r else ""
            if r is None:
                out.append(NodeStatus(n, n.state, None))
            elif r.rc == 0 and first.isdigit():
                out.append(NodeStatus(n, "up", float(first), JobState.parse(r.stdout), init_script.parse(r.stdout)))
            else:
                out.append(NodeStatus(n, "unreachable", None))
        return out

    def exec(self, command: str, indexes: Sequence[int] | None = None,
             timeout: float | None = None) -> list[sshexec.ExecResult]:
        return sshexec.run_all(self.state, self.select(indexes), command, timeout)

    def run(self, playbook: str | Path, extravars: dict[str, Any] | None = None, *,
            limit: str | None = None, verbose: int = 0, console: Console | None = None) -> RunResult:
        from .playbook.runner import run_playbook

        self.state.load()  # an unknown cluster is refused before its lock file is made
        with self.state.lock(f"run {Path(playbook).name}"):
            nodes = self.nodes()
            if not nodes:
                raise UsageError(f"cluster '{self.name}' has no nodes", "add some with `vca provision N`")
            return run_playbook(
                playbook, inventory=self.inventory_path(refresh=False), state_dir=self.state.dir,
                extravars={"vca_cluster": self.name, **(extravars or {})}, limit=limit, verbose=verbose,
                hosts_expected=[n.name for n in nodes], console=console,
            )

    def stop(self, grace: int, indexes: Sequence[int] | None = None) -> list[sshexec.ExecResult]:
        """Stop the jobs (all nodes, or ``indexes``), holding the cluster's lock."""
        from .release.inject import stop_command

        self.state.load()
        with self.state.lock("stop"):
            return self.exec(stop_command(grace), indexes, timeout=grace + 30)

    # -- setup stage -------------------------------------------------------------------------
    def setup_roles(self) -> dict[str, list[str]]:
        """The setup roles named for each node role: {"all"|"head"|"worker"|"dev": [role, ...]}."""
        from .setup import settings as setup_settings

        return setup_settings.for_playbook(self.spec.setup)

    def setup(self, indexes: Sequence[int] | None = None, *, add: str | None = None, on: str = "all",
              console: Console | None = None, verbose: int = 0) -> SetupRun:
        """Apply the setup roles to the nodes (all, or those ``indexes``). With ``add``, first name that
        role for the nodes of ``on`` (all, head, worker, dev) and apply to those nodes."""
        from .setup import settings as setup_settings
        from .setup import stage as setup_stage

        spec = self.spec
        request = {setup_settings.check_target(on): [add]} if add is not None else None
        named = setup_settings.merged(spec.setup, request)
        nodes = self.select(indexes)
        if named != spec.setup:
            self.state.save(replace(spec, setup=named))
        if add is not None and on != "all":
            nodes = [n for n in nodes if n.role == on]
        return setup_stage.apply(self.state, self.inventory_path(refresh=False), named, nodes, console=console,
                                 verbose=verbose)

    def forget_setup_role(self, role: str, on: str | None = None) -> list[str]:
        """Stop naming ``role`` (for ``on``, or wherever it is named); returns where it was named.
        Nothing is undone on the nodes."""
        from .setup import settings as setup_settings

        spec = self.spec
        kept, left = setup_settings.without(spec.setup, role, on)
        self.state.save(replace(spec, setup=kept))
        return left

    def inventory_path(self, refresh: bool = True) -> Path:
        """The inventory for Ansible: the provider's own source, else the generated inventory.yml."""
        if refresh:
            self.nodes()
        return self.provider.inventory_source(self.state) or self.state.inventory_path

    def ssh_config(self) -> str:
        self.nodes()
        return self.state.ssh_config_path.read_text()


def index_ranges(indexes: list[int]) -> str:
    """[0,1,2,5] -> '0-2, 5'"""
    out: list[str] = []
    for i in indexes:
        if out and int(out[-1].split("-")[-1]) == i - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ", ".join(out)


def format_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def expiry_warning(cluster: str, nodes: Sequence[Node], now: float) -> str | None:
    """One line about nodes past their expiry time (ec2: vca:expires-at), which still cost money."""
    late = [n.expires_at for n in nodes if n.expires_at is not None and n.expired(now)]
    if not late:
        return None
    return (f"{len(late)} of {len(nodes)} nodes of cluster '{cluster}' expired (the first "
            f"{format_uptime(now - min(late))} ago) and still run: `vca -c {cluster} teardown` removes them")
