"""Cluster: one named cluster and every verb vca has for it. The facade the CLI and Python users share.

    from vcloud_ansible import Cluster
    c = Cluster("demo")
    c.provision(4)                            # nodes 0-3 (local lab by default)
    c.inject("examples/hello", env={"GREETING": "hi"}).raise_for_failures()
    c.wait()                                  # until no job runs; raises when one failed
    c.collect("result.txt", "results/")       # results/demo-0/result.txt, ...
    c.teardown()

Capability code (release/, collect/, remote/, playbook/, providers/) takes the cluster's state and node
lists; this module lists the nodes, holds the cluster's lock and calls it. Reading nodes has no side
effects: the access files (inventory, ssh_config, known_hosts) are written where membership changes
(provision, its rollback, a teardown that could not finish) and by ``refresh_access``.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from .errors import NodeNotFound, RemoteFailed, UsageError, VcaError
from .guard import node as guard_node
from .guard.node import GuardState
from .node import ROLES, IndexRanges, Node, NodeRefs, check_role, for_new_nodes, resolve, with_capabilities
from .providers import Provider, check_settings, get_provider
from .providers.base import Configurable, Say, Verifiable
from .release.inject import (
    STATUS_COMMAND,
    JobState,
    job_options,
    job_shell_command,
    logs_command,
    reinject_current,
    stop_command,
    tmux_attach_command,
)
from .remote import access
from .remote import ssh as sshexec
from .state import ClusterRecord, ClusterState, current_cluster_name
from .storage import init_script
from .storage.init_script import InitState

if TYPE_CHECKING:
    from rich.console import Console

    from .collect.outcome import NodeOutcome
    from .collect.run import CollectResult
    from .compile.plan import CompileRequest
    from .compile.run import CompileResult
    from .guard.apply import GuardResult
    from .membership.push import PushResult
    from .playbook.runner import RunResult
    from .put.run import PutOutcome, PutResult
    from .release.transport import InjectResult, NodeInject
    from .service.ops import HaCluster
    from .service.spec import ServiceInfo
    from .setup.stage import SetupRun
    from .shape.remove import RemoveResult

DEFAULT_PROVIDER = "local"
GONE = ("down", "terminated", "interrupted")  # node states `vca heal` replaces


def _quiet(_msg: str) -> None:
    pass


@dataclass
class NodeStatus:
    node: Node
    state: str  # up | unreachable | down | <provider state>
    uptime: float | None  # seconds since the node's init started, as the node reports it
    job: JobState | None = None  # release and job, as the node's agent reports them
    init: InitState | None = None  # the user's init script, where it ran (storage.init_script)
    guard: GuardState | None = None  # the node's cost guard: state, idle time, time left (guard.node)


@dataclass
class WaitResult:
    """Every job finished well (``Cluster.wait``): the nodes as last seen, and how long it took."""

    nodes: list[NodeStatus]
    seconds: float


@dataclass
class TeardownResult:
    """What ``Cluster.teardown`` removed. ``existed``: False when there was no cluster to tear down
    (never made, or torn down by another command meanwhile)."""

    removed: list[Node] = field(default_factory=list)
    existed: bool = True


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

    # -- record and provider -------------------------------------------------------------------
    @property
    def record(self) -> ClusterRecord:
        """What vca keeps of the cluster: provider and settings. Raises ClusterNotFound."""
        return self.state.load()

    @property
    def provider(self) -> Provider:
        return get_provider(self.record.provider)

    def exists(self) -> bool:
        return self.state.exists()

    # -- nodes ---------------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        """The nodes as the provider sees them now, sorted by index. Writes nothing."""
        return self.provider.nodes(self.state)

    def select(self, indexes: Sequence[int] | None = None, nodes: list[Node] | None = None) -> list[Node]:
        """The nodes with these indexes (all when none); ``nodes``: the cluster's, when already listed.
        A ``NodeRefs`` selection may also name nodes by name, role (``worker``/``workers``: every
        worker) or address."""
        nodes = self.nodes() if nodes is None else nodes
        if isinstance(indexes, NodeRefs) and indexes.where:  # --where CAP: among the nodes named, or all
            base = indexes.named()
            return with_capabilities(self.name, indexes.where, self.select(base, nodes) if base else nodes, nodes)
        if not indexes:
            return nodes
        by_index = {n.index: n for n in nodes}
        refs = indexes.refs if isinstance(indexes, NodeRefs) else ()
        if isinstance(indexes, IndexRanges):  # checked against the nodes, never expanded
            missing = indexes.missing(by_index)
            indexes = indexes.within(by_index)
        else:
            missing = [str(i) for i in indexes if i not in by_index]
        named: list[Node] = []
        for ref in refs:
            found = resolve(ref, nodes)
            if not found and not (ref in (*ROLES, "workers") and nodes):  # no dev node is no error
                missing.append(f"'{ref}'")
            named += found
        if missing:
            have = index_ranges(sorted(by_index)) or "none"
            raise NodeNotFound(
                f"cluster '{self.name}' has no node {', '.join(missing)} (nodes: {have})",
                "name nodes by index, range, name (<cluster>-N), role (head, dev, workers) or address; "
                "see `vca status`",
            )
        picked = [by_index[i] for i in indexes] + named
        if refs and not picked:
            raise NodeNotFound(f"cluster '{self.name}' has no node with role {', '.join(refs)}",
                               "see the role column of `vca status`")
        return list({n.index: n for n in picked}.values())

    def refresh_access(self, nodes: list[Node] | None = None) -> list[Node]:
        """Write inventory.yml, ssh_config and known_hosts for ``nodes`` (default: as listed now), for
        the commands that hand them to ssh, Ansible or the user. Returns the nodes."""
        nodes = self.nodes() if nodes is None else nodes
        access.write_access_files(self.state, nodes)
        return nodes

    def _reach(self) -> list[Node]:
        """The nodes, for a verb that connects to them over SSH (through ssh_config). The access files
        are rewritten only when they no longer match the listing: with the lab, membership changes only
        through vca, so they always match; on ec2 the cloud can change underneath (a stopped node started
        again has a new address, a node removed by hand or by its expiry guard)."""
        nodes = self.nodes()
        if not self._access_current(nodes):
            access.write_access_files(self.state, nodes)
        return nodes

    def _access_current(self, nodes: list[Node]) -> bool:
        try:
            if (self.state.ssh_config_path.read_text() != access.render_ssh_config(self.state, nodes)
                    or self.state.inventory_path.read_text() != access.render_inventory(self.state, nodes)):
                return False
            known = set(self.state.known_hosts.read_text().splitlines())
        except OSError:
            return False
        return all(f"{access.known_host_pattern(n)} {n.host_key}" in known for n in nodes if n.host_key)

    # -- making and removing nodes -------------------------------------------------------------
    def provision(self, count: int | None = 1, provider: str | None = None, say: Say = _quiet, *,
                  total: int | None = None, settings: dict[str, Any] | None = None, role: str | None = None,
                  setup: Mapping[str, Sequence[str]] | None = None, console: Console | None = None) -> list[Node]:
        """Add ``count`` nodes with the next free indexes (creating the cluster on first use); returns
        them once they accept SSH.

        With ``total``, converge instead: add only the nodes the cluster lacks to have ``total``
        (never removes any), so running it again adds nothing. ``settings`` override the provider
        settings stored with the cluster (provider ec2: region, image, ...). ``role``: of the new
        nodes, head, worker or dev (default: node 0 head, others worker; at most one head).
        ``setup`` names setup roles ({"all"|"head"|"worker"|"dev": [role, ...]}); the new nodes get
        the cluster's setup roles once they accept SSH, before anything else reaches them. Nodes added
        to a cluster that runs a release receive it and start it.
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
        setup_before = self.record.setup if existed else {}
        setup_after = setup_settings.merged(setup_before, setup)  # every role checked before anything is made
        if existed:
            record = self.record
            if provider and provider != record.provider:
                raise UsageError(
                    f"cluster '{self.name}' uses provider '{record.provider}', not '{provider}'",
                    "leave out --provider, or pick another cluster name with -c",
                )
            prov = get_provider(record.provider)
        else:
            prov = get_provider(provider or DEFAULT_PROVIDER)
        if prov.name == "static" and total is None:  # its nodes are the hosts given: `vca create`
            raise UsageError("provider static makes no machines: its nodes are the hosts it was given",
                             "add existing hosts with `vca create NAME --static HOST ...`")
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
        plan.stored = self.record.settings if existed else {}
        check_settings(prov.name, settings)  # a setting another provider declares, or none does
        if isinstance(prov, Configurable):
            # Checked against the provider before anything is made, here or there. The role of the new
            # nodes is one of the provider's per-run settings (ec2: the vca:role tag).
            plan.to_store = prov.prepare(plan.stored, {**settings, **({"role": plan.role} if plan.role else {})},
                                         creating=not existed)
        else:
            plan.to_store = plan.stored
        return plan

    def _provision(self, plan: _ProvisionPlan, say: Say, console: Console | None) -> list[Node]:
        prov, existed, count, stored, to_store = plan.prov, plan.existed, plan.count, plan.stored, plan.to_store
        if not existed:
            self.state.create(prov.name, to_store)
        elif to_store != stored:
            self.state.save(ClusterRecord(**{**asdict(self.record), "settings": to_store}))
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
            every = self.refresh_access(sorted(current.values(), key=lambda n: n.index))
            if new:
                say(f"waiting for SSH on {len(new)} node{'s' if len(new) != 1 else ''}")
            sshexec.wait_ready(self.state, new)
        except (VcaError, KeyboardInterrupt) as exc:  # all of them or none: remove what this run made
            if isinstance(exc, KeyboardInterrupt):
                say(f"interrupted: removing the {len(new)} new node{'s' if len(new) != 1 else ''}")
            prov.destroy(self.state, [n.index for n in new], say)
            if not self._forget_if_new_and_empty(prov, existed):
                self.refresh_access()  # the access files without the removed nodes
            raise
        # Names, hostfile and node-to-node SSH on every live node (the old ones learn the new) before
        # the setup stage, so that roles and jobs find them.
        pushed = self.push_membership(say) if new else None  # listed again: now they all run
        # The setup stage, on the new nodes only; a failed role leaves them in place for `vca setup`.
        self._setup_new_nodes(new, plan, say, console)
        if existed and new:  # nodes added after an inject get the release the cluster runs and start it
            self._grow(every, new, say)
        self._raise_push_failures(pushed)
        return new

    def add_hosts(self, hosts: Sequence[str | Mapping[str, Any]], *, user: str | None = None,
                  port: int | None = None, identity: str | Path | None = None, rescan: bool = False,
                  setup: Mapping[str, Sequence[str]] | None = None, say: Say = _quiet,
                  console: Console | None = None) -> list[Node]:
        """Make existing hosts nodes of a static cluster (created on first use): each ``host``,
        ``user@host:port`` or a mapping/JSON object with user, port, identity, work, scratch,
        capabilities, role; ``user``, ``port``, ``identity`` fill what a host does not give. First
        contact pins each host key (a changed key is refused unless ``rescan``) and authorizes the
        cluster's key; then as ``provision``: SSH, node list, setup roles, the running release.
        Hosts already in the cluster are no change. Returns the new nodes."""
        from .providers.static import merge_hosts
        from .providers.static.contact import learn_keys

        settings: dict[str, Any] = {k: v for k, v in {"user": user, "port": port, "rescan": rescan or None,
                                                       "identity": str(identity) if identity else None}.items()
                                    if v is not None}
        settings["hosts"] = [dict(h) if isinstance(h, Mapping) else h for h in hosts]
        stored = self.record.settings if self.exists() else {}
        if self.exists() and self.record.provider != "static":
            raise UsageError(f"cluster '{self.name}' uses provider '{self.record.provider}', not static",
                             "pick another cluster name")
        merged = merge_hosts(stored, settings)  # checked here: bad hosts are refused before anything
        have = {h.key for h in merge_hosts(stored, {})} if stored else set()
        # Every new host answers with the key pinned for it (or, first seen, any) before anything is made.
        learn_keys([h for h in merged if h.key not in have], rescan, self.state.home)
        total = len(merged)
        return self.provision(None, "static", say, total=total, settings=settings, setup=setup, console=console)

    def _keeps_machines(self, verb: str) -> None:
        """Static hosts are not vca's to remove or power: refuse ``verb`` in one line."""
        if self.record.provider == "static":
            raise UsageError(f"cluster '{self.name}' is made of existing hosts (provider static): "
                             f"vca {verb} does not apply to them",
                             "`vca teardown` releases every host (cleaned, never powered off)")

    def push_membership(self, say: Say = _quiet, nodes: list[Node] | None = None, *,
                        hook: str = "changed") -> PushResult:
        """Tell every live node the cluster as it is now (``nodes``: as just listed, else listed here):
        /etc/vca/cluster.json, the /etc/hosts block, /etc/vca/hostfile, node-to-node SSH (the cluster's
        own key, every member's host key); where the node list changed, the running release's
        ``vca-on-change`` is called (``hook`` "always": on every node). One ssh session per node, all at
        once; no job is touched. Call it after any change of membership. Holds the cluster's lock.
        Nodes that fail are in the result (``result.failed``)."""
        from .membership.push import push

        with self.state.lock("membership", say):
            every = self._reach() if nodes is None else nodes
            result = push(self.state, every, hook=hook)
        n = len(result.nodes)
        say(f"node list pushed to {n} node{'s' if n != 1 else ''} in {result.seconds:.1f} s"
            + (f" ({len(result.failed)} failed)" if result.failed else ""))
        return result

    def _push_or_raise(self, say: Say, nodes: list[Node] | None = None) -> None:
        """The membership push after a change of membership; RemoteFailed naming the nodes it missed.
        Then the HA cluster's membership, when the setup roles name ha_cluster."""
        self._raise_push_failures(self.push_membership(say, nodes))
        self._ha_membership(say)

    def _ha_membership(self, say: Say) -> None:
        from .setup import ha_membership as ha

        setup = self.record.setup
        if ha.named(setup):
            say("bringing the HA cluster's membership up to date")
            ha.sync(self.state, self.inventory_path(refresh=False), setup, self.nodes())

    @staticmethod
    def _raise_push_failures(pushed: PushResult | None) -> None:
        if pushed is not None and pushed.failed:
            raise RemoteFailed.naming("pushing the node list", pushed.failed, len(pushed.nodes),
                                      "once they answer, `vca heal` or the next provision pushes it again")

    def _setup_new_nodes(self, new: list[Node], plan: _ProvisionPlan, say: Say, console: Console | None) -> None:
        """Store the setup roles this provision named, then run the setup stage on the new nodes."""
        from .setup import settings as setup_settings
        from .setup import stage as setup_stage

        if plan.setup_after != plan.setup_before:
            self.state.save(replace(self.record, setup=plan.setup_after))
        setup_stage.after_provision(self.state, lambda: self.inventory_path(refresh=False), plan.setup_after, new,
                                    plan.before, setup_settings.added(plan.setup_before, plan.setup_after), say,
                                    console)

    def _grow(self, every: list[Node], new: list[Node], say: Say) -> None:
        growth = reinject_current(self.state, every, new)
        names = index_ranges(sorted(n.index for n in new))
        which = f"node{'s' if len(new) != 1 else ''} {names}"
        if growth.result is not None:
            growth.result.raise_for_failures(f"handing release {growth.release_id} to the new nodes")
            say(f"new {which}: release {growth.release_id} (the newest release every other node received) "
                "installed and started; the other nodes keep their releases and jobs")
        elif growth.recorded:
            say(f"new {which}: no release (none reached every other node yet); give them one with "
                f"`vca inject PKG --node {names.replace(' ', '')}`")

    def heal(self, say: Say = _quiet, console: Console | None = None) -> list[Node]:
        """Replace the nodes that are gone (a lab node whose machine died, an EC2 instance terminated;
        listed as down or terminated) under the same indexes and roles: they get the setup stage and
        the release the cluster runs, and every node the new membership. Returns the new nodes ([] with
        nothing to heal; stopped nodes are not gone: `vca power on` starts them). A replacement that
        fails (no SSH) is removed again where the provider can (ec2), and the nodes stay gone. Holds
        the cluster's lock."""
        from .providers.base import Healable
        from .setup import stage as setup_stage

        prov = self.provider
        with self.state.lock("heal", say):
            nodes = self.nodes()
            gone = [n for n in nodes if n.state in GONE]
            if not gone:
                stopped = [n.index for n in nodes if n.state == "stopped"]
                if stopped:
                    say(f"node{'s' if len(stopped) != 1 else ''} {index_ranges(stopped)} "
                        f"{'are' if len(stopped) != 1 else 'is'} stopped, not gone: `vca power on` starts "
                        f"{'them' if len(stopped) != 1 else 'it'}")
                return []
            if not isinstance(prov, Healable):
                raise UsageError(f"provider '{prov.name}' cannot replace nodes (vca heal)",
                                 "remove them with `vca teardown`, then provision again")
            say(f"healing node{'s' if len(gone) != 1 else ''} {index_ranges([n.index for n in gone])}")
            every: list[Node] = []

            def ready(new: list[Node]) -> None:  # the new nodes' host keys, then SSH with the cluster's key
                keys = {n.index: n.host_key for n in new}
                every[:] = [replace(n, host_key=keys.get(n.index, n.host_key)) for n in prov.nodes(self.state)]
                self.refresh_access(every)
                say(f"waiting for SSH on {len(new)} node{'s' if len(new) != 1 else ''}")
                sshexec.wait_ready(self.state, new)

            try:
                new = prov.replace(self.state, gone, say, ready)
            except BaseException:
                with contextlib.suppress(VcaError):
                    self.refresh_access()  # the access files as the nodes are now
                raise
            if not every:  # a provider that did not call ready()
                ready(new)
            pushed = self.push_membership(say)
            others = [n for n in every if n.index not in {m.index for m in new}]
            record = self.record
            setup_stage.after_provision(self.state, lambda: self.inventory_path(refresh=False), record.setup, new,
                                        others, {}, say, console)
            self._grow(every, new, say)
        self._raise_push_failures(pushed)
        return new

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

    def teardown(self, say: Say = _quiet) -> TeardownResult:
        """Remove every node and forget the cluster, holding its lock. Idempotent: a teardown that
        waited for another one finds nothing left (``existed`` False)."""
        if not self.exists():
            return TeardownResult(existed=False)
        with self.state.lock("teardown", say):
            if not self.exists():
                return TeardownResult(existed=False)
            return TeardownResult(self._teardown(say))

    def _teardown(self, say: Say) -> list[Node]:
        gone = self.provider.destroy(self.state, None, say)
        left = self.provider.nodes(self.state)
        if left:
            self.refresh_access(left)  # the access files name what is left, for the next try
            raise VcaError(
                f"teardown left {len(left)} node(s) of '{self.name}': {', '.join(n.name for n in left)}",
                "run `vca teardown` again; see `vca status`",
            )
        self.state.forget()
        return gone

    def remove(self, nodes: Sequence[int] | None = None, *, workers: int | None = None, force: bool = False,
               say: Say = _quiet, confirm: Callable[[list[Node]], None] | None = None) -> RemoveResult:
        """Remove the ``nodes`` named (indexes, or a NodeRefs selection), or the ``workers`` K
        highest-index workers whose job is not running (every worker when K exceeds their count, said
        in ``note``). Nodes running a job go only with ``force``; the head only when named. Nothing of
        them is left (as a teardown); the nodes left get the new node list. ``confirm(victims)`` is
        called before anything is removed (raise to refuse)."""
        from .shape.remove import RemoveResult, pick_shrink, remove_nodes

        if (workers is None) == (not nodes):
            raise UsageError("name the nodes to remove, or give --workers K (not both)",
                             "vca remove 3,5  |  vca remove --workers 2")
        if workers is not None and workers < 1:
            raise UsageError(f"--workers must be at least 1, got {workers}")
        self.state.load()
        self._keeps_machines("remove")
        with self.state.lock("remove", say):
            every = self._reach()
            if workers is None:
                victims, note = self.select(nodes, every), ""
                named = {n.index for n in victims}
                rows = [s for s in self.status() if s.node.index in named]
                pick_shrink(self.name, rows, len(rows), force, workers_only=False)  # refuses running jobs
            else:
                victims, note = pick_shrink(self.name, self.status(), workers, force, workers_only=True)
            if note:
                say(note)
            if confirm:
                confirm(victims)
            left = remove_nodes(self.state, self.provider, victims, self.refresh_access, say)
            self._push_or_raise(say)
            return RemoveResult(victims, [], left, note)

    def resize(self, total: int, *, force: bool = False, say: Say = _quiet, console: Console | None = None,
               confirm: Callable[[list[Node]], None] | None = None) -> RemoveResult:
        """Grow (as ``provision(total=...)``) or shrink the cluster to ``total`` nodes. Shrinking takes
        workers first (highest index, idle before running), then dev nodes, the head last; nodes running
        a job only with ``force``. ``confirm(victims)`` is called before anything is removed."""
        from .shape.remove import RemoveResult, pick_shrink, remove_nodes

        if total < 0:
            raise UsageError(f"--total must be at least 0, got {total}")
        self.state.load()
        self._keeps_machines("resize")
        with self.state.lock("resize", say):
            every = self._reach()
            if total > len(every):
                added = self.provision(total=total, say=say, console=console)
                return RemoveResult([], added, self.nodes())
            if total == len(every):
                return RemoveResult([], [], every, f"cluster '{self.name}' has {total} nodes: nothing to do")
            victims, _ = pick_shrink(self.name, self.status(), len(every) - total, force, workers_only=False)
            if confirm:
                confirm(victims)
            left = remove_nodes(self.state, self.provider, victims, self.refresh_access, say)
            self._push_or_raise(say)
            return RemoveResult(victims, [], left)

    def power(self, on: bool, nodes: Sequence[int] | None = None, say: Say = _quiet) -> list[Node]:
        """Power the nodes (all, or ``nodes``) off or on again, keeping their disks, indexes and roles
        (ec2: StopInstances / StartInstances; the lab: the machine stops, its overlay stays). Nodes
        started again are back when they accept SSH (host keys checked against the pinned ones) and
        get the current node list. Returns the nodes whose power changed."""
        from .providers.base import Powerable

        self._keeps_machines("power")
        prov = self.provider
        if not isinstance(prov, Powerable):
            raise UsageError(f"provider '{prov.name}' cannot power nodes off and on",
                             "remove them with `vca remove` instead")
        with self.state.lock(f"power {'on' if on else 'off'}", say):
            every = prov.nodes(self.state)
            targets = [n.index for n in self.select(nodes, every)
                       if (n.state == "stopped") == on]
            if not on:
                return prov.power_off(self.state, targets, say) if targets else []
            started = prov.power_on(self.state, targets, say) if targets else []
            if not started:
                return []
            current = {n.index: n for n in prov.nodes(self.state)}
            for n in started:
                if n.index in current and n.host_key:
                    current[n.index].host_key = n.host_key
            every = self.refresh_access(sorted(current.values(), key=lambda n: n.index))
            back = [current[n.index] for n in started if n.index in current]
            say(f"waiting for SSH on {len(back)} node{'s' if len(back) != 1 else ''}")
            sshexec.wait_ready(self.state, back)
            for n in back:  # SSH answered: running, whatever the listing right after the boot said (the lab
                n.state = "running"  # writes the machine's PID a moment later); they get the node list too
            self._push_or_raise(say, [n for n in every if n.state == "running"])
            return back

    def import_instances(self, ids: Sequence[str], *, role: str | None = None, say: Say = _quiet,
                         console: Console | None = None) -> list[Node]:
        """Adopt machines that exist (ec2: instance ids) as nodes with the next free indexes, only those
        named; refuses any tagged for another cluster. Once they accept SSH they get the cluster's setup
        roles and release, and every node the new node list. Returns the new nodes."""
        from .providers.base import Adopting
        from .setup import stage as setup_stage

        ids = list(dict.fromkeys(ids))
        if not ids:
            raise UsageError("name the instances to import", "vca import i-0123456789abcdef0 ...")
        check_role(role)
        prov = self.provider
        if not isinstance(prov, Adopting):
            raise UsageError(f"provider '{prov.name}' cannot import machines", "use `vca provision`")
        with self.state.lock("import", say):
            before = prov.nodes(self.state)
            role = for_new_nodes(self.name, role, len(ids), before)
            new = prov.adopt(self.state, ids, say, role)
            current = {n.index: n for n in prov.nodes(self.state)}
            for n in new:
                if n.index in current and n.host_key:
                    current[n.index].host_key = n.host_key
            every = self.refresh_access(sorted(current.values(), key=lambda n: n.index))
            sshexec.wait_ready(self.state, new)
            pushed = self.push_membership(say)  # names, hostfile and SSH between nodes, the new ones too
            setup_stage.after_provision(self.state, lambda: self.inventory_path(refresh=False), self.record.setup,
                                        new, before, {}, say, console)
            if new and before:
                self._grow(every, new, say)
            self._raise_push_failures(pushed)
            return new

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

    # -- looking at nodes and running commands -------------------------------------------------
    def status(self) -> list[NodeStatus]:
        """Every node with its state as probed over SSH (one round trip each), uptime and job."""
        nodes = self._reach()
        live = [n for n in nodes if n.state == "running"]
        command = f"ps -o etimes= -p 1; {STATUS_COMMAND}; {init_script.STATUS_COMMAND}; {guard_node.STATUS_COMMAND}"
        probe = {r.node.index: r for r in sshexec.run_all(self.state, live, command, timeout=15)}
        out = []
        for n in nodes:
            r = probe.get(n.index)
            first = r.stdout.split("\n", 1)[0].strip() if r else ""
            if r is None:
                out.append(NodeStatus(n, n.state, None))
            elif r.rc == 0 and first.isdigit():
                out.append(NodeStatus(n, "up", float(first), JobState.parse(r.stdout), init_script.parse(r.stdout),
                                      GuardState.parse(r.stdout)))
            else:
                out.append(NodeStatus(n, "unreachable", None))
        return out

    def guard(self, idle_stop: str | None = None, idle_action: str | None = None, lifetime: str | None = None,
              *, interval: int | None = None, imds: str | None = None, spot_watch: str | None = None,
              say: Say = _quiet) -> GuardResult:
        """Change the cost guard of the running cluster in one go (None: leave as it is): ``idle_stop``
        ('30m', '0'), ``idle_action`` ('stop' or 'terminate'), ``lifetime`` ('+4h' from now, '0' never).
        Stored with the cluster (nodes added later get it), set on the cloud side (EC2: the
        vca:expires-at tags and the instances' shutdown behaviour) and on every running node's guard.
        With nothing to change it pushes the current settings again. Nodes it missed are in
        ``result.failed``."""
        from .guard.apply import GuardChange, GuardResult, ec2_apply, push
        from .guard.settings import GuardSettings, describe

        # bad input: nothing changed
        change = GuardChange.parse(idle_stop, idle_action, lifetime, interval, imds, spot_watch)
        self._keeps_machines("guard")  # a guard powers machines off: never on hosts the user owns
        with self.state.lock("guard", say):
            record = self.record
            settings = change.applied_to(GuardSettings.of(record.provider, record.guard), time.time())
            nodes = self.provider.nodes(self.state)
            tagged = 0
            if record.provider == "ec2":
                tagged = ec2_apply(str(record.settings.get("region")), nodes, settings, change.lifetime is not None)
            record.guard = settings.to_record()
            if record.provider == "ec2" and change.idle_action is not None:  # instances launched later too
                record.settings["shutdown_behavior"] = settings.shutdown_behavior
            self.state.save(record)
            said, failed = push(self.state, settings, nodes)
        say(f"guard: {describe(settings)}; set on {len(said)} node{'s' if len(said) != 1 else ''}"
            + (f" ({len(failed)} failed)" if failed else "") + (f", {tagged} instances tagged" if tagged else ""))
        return GuardResult(settings, said, failed, tagged)

    def exec(self, command: str, indexes: Sequence[int] | None = None,
             timeout: float | None = None) -> list[sshexec.ExecResult]:
        """``command`` on the nodes (all, or ``indexes``) at once; results in node order."""
        return sshexec.run_all(self.state, self.select(indexes, self._reach()), command, timeout)

    def run(self, playbook: str | Path, extravars: dict[str, Any] | None = None, *,
            limit: str | None = None, verbose: int = 0, console: Console | None = None) -> RunResult:
        """Run playbooks/PLAYBOOK.yml (or a path) against the cluster through ansible-runner."""
        from .playbook.runner import run_playbook

        self.state.load()  # an unknown cluster is refused before its lock file is made
        with self.state.lock(f"run {Path(playbook).name}"):
            nodes = self.refresh_access()  # Ansible reads the inventory and ssh options from them
            if not nodes:
                raise UsageError(f"cluster '{self.name}' has no nodes", "add some with `vca provision N`")
            return run_playbook(
                playbook, inventory=self._inventory(), state_dir=self.state.dir,
                extravars={"vca_cluster": self.name, **(extravars or {})}, limit=limit, verbose=verbose,
                hosts_expected=[n.name for n in nodes], console=console,
            )

    # -- code on the nodes ---------------------------------------------------------------------
    def inject(self, package: str | Path, *, env: Mapping[str, str] | None = None, procs: int | str = 1,
               mem: str | None = None, tmux: bool = False, restart: bool = False, grace: int = 10,
               bucket: str | None = None, nodes: Sequence[int] | None = None, timeout: float | None = None,
               on_start: Callable[[list[Node]], None] | None = None,
               on_done: Callable[[NodeInject], None] | None = None) -> InjectResult:
        """Put ``package`` (a folder or tarball with an executable ``vcloud-launch``) on the nodes (all,
        or ``nodes``: indexes) and start it there, detached, one ssh session per node at once.

        ``env``: the job's own variables (text); ``procs``: processes per node (a number or "auto");
        ``mem``: address-space limit per process ("512M"); ``restart``: stop a running job first,
        SIGKILL after ``grace`` seconds; ``bucket``: nodes download the package from this S3 bucket.
        Everything is checked (and the package packed) before anything is sent. Holds the cluster's
        lock. ``on_start``: called with the target nodes; ``on_done``: once per node as it finishes.
        Failed nodes are in the result: ``result.raise_for_failures()`` raises RemoteFailed.
        """
        from .release.inject import inject as install_release

        options = job_options(env, procs, mem, tmux, restart, grace, bucket)
        every = self._reach()  # listed once: on ec2 each listing is an API call
        targets = self.select(nodes, every)  # unknown nodes are refused before the lock and the packing
        with self.state.lock("inject") as waited:
            if waited:  # another command may have changed the nodes meanwhile
                every = self._reach()
                targets = self.select(nodes, every)
            if on_start:
                on_start(targets)
            return install_release(self.state, every, targets, Path(package), options, on_done=on_done,
                                   timeout=timeout)

    def wait(self, timeout: float = 3600.0, interval: float = 2.0,
             on_progress: Callable[[int, int], None] | None = None, *, indexes: Sequence[int] | None = None,
             on_look: Callable[[list[NodeStatus]], None] | None = None) -> WaitResult:
        """Wait until no node (of ``indexes``, when given) runs a job. Raises RemoteFailed naming the nodes
        whose job failed or that are down, VcaError when jobs still run after ``timeout`` seconds.
        ``on_progress(running, total)`` is called after each look that found jobs running (every
        ``interval`` seconds), ``on_look(rows)`` with the nodes' states (the job's ``doing`` and
        ``log_bytes`` tell what it runs and whether it makes progress)."""
        started = time.monotonic()
        deadline = started + timeout
        chosen = {n.index for n in self.select(indexes)} if indexes else None
        while True:
            rows = [s for s in self.status() if chosen is None or s.node.index in chosen]
            running = [s for s in rows if s.job and s.job.job == "running"]
            if not running:
                break
            if time.monotonic() >= deadline:
                raise VcaError(f"jobs still running after {timeout:.0f} s on "
                               + ", ".join(f"{s.node.name} (`{s.job.doing}`)" if s.job and s.job.doing
                                           else s.node.name for s in running))
            if on_progress:
                on_progress(len(running), len(rows))
            if on_look:
                on_look(rows)
            time.sleep(interval)
        bad = [s for s in rows if s.state != "up" or (s.job and s.job.job == "exited" and s.job.exit != "0")]
        if bad:
            detail = ", ".join(f"{s.node.name} ({s.job.label if s.state == 'up' and s.job else s.state})"
                               for s in bad)
            raise RemoteFailed(f"jobs finished; not successful on {len(bad)} of {len(rows)} nodes: {detail}",
                               [s.node.name for s in bad])
        return WaitResult(rows, time.monotonic() - started)

    @overload
    def logs(self, node: int | str = 0, *, proc: int = 0, tail: int = 100, follow: Literal[False] = False) -> str: ...
    @overload
    def logs(self, node: int | str = 0, *, proc: int = 0, tail: int = 100, follow: Literal[True]) -> Iterator[str]: ...
    def logs(self, node: int | str = 0, *, proc: int = 0, tail: int = 100, follow: bool = False) -> str | Iterator[str]:
        """The last ``tail`` lines of the job log of ``node`` (process ``proc``). With ``follow``, an
        iterator of lines as the log grows; closing it (or leaving the loop) ends the stream."""
        argv = self.logs_argv(node, proc=proc, tail=tail, follow=follow)
        if not follow:
            res = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
            if res.returncode != 0:
                name = node if isinstance(node, str) and not node.isdigit() else f"{self.name}-{node}"
                raise RemoteFailed(f"logs of {name} failed: "
                                   f"{res.stderr.strip()[-300:] or f'exit {res.returncode}'}", [name])
            return res.stdout
        return _stream_lines(argv)

    def stop(self, grace: int, indexes: Sequence[int] | None = None) -> list[sshexec.ExecResult]:
        """Stop the jobs (all nodes, or ``indexes``): SIGTERM, SIGKILL after ``grace`` seconds. Holds the
        cluster's lock."""
        self.state.load()
        with self.state.lock("stop"):
            return self.exec(stop_command(grace), indexes, timeout=grace + 30)

    def compile(self, request: CompileRequest, *, say: Say = _quiet, log: Say = _quiet,
                console: Console | None = None) -> CompileResult:
        """Build ``request.src`` on the cluster's dev node (made when absent) and bring the artifacts
        back; ``log`` gets the build log line by line. See vcloud_ansible.compile."""
        from .compile.run import compile_sources

        return compile_sources(self, request, say, log, console)

    # -- setup stage -------------------------------------------------------------------------
    def setup_roles(self) -> dict[str, list[str]]:
        """The setup roles named for each node role: {"all"|"head"|"worker"|"dev": [role, ...]}."""
        from .setup import settings as setup_settings

        return setup_settings.for_playbook(self.record.setup)

    def setup(self, indexes: Sequence[int] | None = None, *, add: str | None = None, on: str = "all",
              console: Console | None = None, verbose: int = 0) -> SetupRun:
        """Apply the setup roles to the nodes (all, or those ``indexes``). With ``add``, first name that
        role for the nodes of ``on`` (all, head, worker, dev) and apply to those nodes."""
        from .setup import settings as setup_settings
        from .setup import stage as setup_stage

        record = self.record
        request = {setup_settings.check_target(on): [add]} if add is not None else None
        named = setup_settings.merged(record.setup, request)
        every = self.nodes()
        nodes = self.select(indexes, every)
        if named != record.setup:
            self.state.save(replace(record, setup=named))
        if add is not None and on != "all":
            nodes = [n for n in nodes if n.role == on]
        return setup_stage.apply(self.state, self.inventory_path(refresh=False), named, nodes, console=console,
                                 verbose=verbose, every=every)

    def forget_setup_role(self, role: str, on: str | None = None) -> list[str]:
        """Stop naming ``role`` (for ``on``, or wherever it is named); returns where it was named.
        Nothing is undone on the nodes."""
        from .setup import settings as setup_settings

        record = self.record
        kept, left = setup_settings.without(record.setup, role, on)
        self.state.save(replace(record, setup=kept))
        return left


    # -- HA services (vcloud_ansible.service) ---------------------------------------------------
    def _ha(self) -> HaCluster:
        from .service.ops import HaCluster

        return HaCluster(self.state, self.record.setup, self._reach())

    def services(self) -> list[ServiceInfo]:
        """The services of the HA cluster: where each runs, its state, fail count and since when."""
        return self._ha().services()

    def add_service(self, name: str, command: list[str], *, node: str = "any", user: str | None = None,
                    cwd: str | None = None, failover: bool = True, where: Sequence[str] = (),
                    say: Say = _quiet) -> ServiceInfo:
        """Run ``command`` as a pacemaker-managed service ``name`` on ``node`` (index, name, or "any":
        pacemaker chooses), as ``user`` in ``cwd``; returns it once it runs. ``failover``: moved to
        another node when its node fails (False: it stays stopped until its node is back). ``where``:
        only ever on nodes with these capabilities (static hosts). PIDFILE in the command becomes the
        service's PID file (the command then writes it itself)."""
        from .service import ops, spec

        spec.check_name(name)  # bad input is refused before the cluster is looked at
        spec.check_command(command)
        self.state.load()
        with self.state.lock("service add", say):
            return ops.add(self._ha(), name, command, node=str(node), user=user, cwd=cwd, failover=failover,
                           where=where, say=say)

    def remove_service(self, name: str, say: Say = _quiet) -> None:
        """Stop the service everywhere, then forget it."""
        from .service import ops

        self.state.load()
        with self.state.lock("service remove", say):
            ops.remove(self._ha(), name, say)

    def move_service(self, name: str, node: str, say: Say = _quiet) -> ServiceInfo:
        """Run the service on ``node`` from now on (as if added with that node); returns it running there."""
        from .service import ops

        self.state.load()
        with self.state.lock("service move", say):
            return ops.move(self._ha(), name, str(node), say)

    def service_logs(self, name: str, tail: int = 100) -> dict[str, str]:
        """The service's output on each node that ran it ({node: last lines}), the node it runs on last."""
        from .service import ops

        return ops.logs(self._ha(), name, tail)

    # -- reaching nodes from outside -----------------------------------------------------------
    def inventory_path(self, refresh: bool = True) -> Path:
        """The inventory for Ansible: the provider's own source, else the generated inventory.yml
        (written from the nodes as listed now, unless ``refresh`` is False)."""
        if refresh:
            self.refresh_access()
        return self._inventory()

    def _inventory(self) -> Path:
        return self.provider.inventory_source(self.state) or self.state.inventory_path

    def ssh_config(self) -> str:
        """Host entries <cluster>-<index> for ssh, scp and rsync, written from the nodes as listed now."""
        self.refresh_access()
        return self.state.ssh_config_path.read_text()

    def collect(self, remote: str, local: str | Path | None = None, *, indexes: Sequence[int] | None = None,
                suffix: bool = False, overwrite: bool = False, retry_failed: bool = False,
                compression: str = "auto", timeout: float | None = None,
                on_start: Callable[[int], None] | None = None,
                on_done: Callable[[NodeOutcome], None] | None = None) -> CollectResult:
        """Copy REMOTE from the nodes (all, or ``indexes``) into ``local``/<cluster>-<index>/ (with
        ``suffix``: ``local``.<index>), verified against each node's sha256, with the manifest beside.

        REMOTE is relative to the release of the node's last job unless absolute or ``~/...``; globs are
        expanded on the node. ``retry_failed``: only the nodes the manifest lists as failed.
        ``timeout``: seconds one node may take. ``on_start(count)`` and ``on_done(outcome)`` report
        progress. Nodes that fail do not stop the others: see ``CollectResult.failed`` and
        ``raise_for_failures``. Inputs are checked before any node is listed or asked.
        """
        from .collect.run import Request, collect_nodes

        request = Request.make(remote, local, suffix=suffix, compression=compression)
        return collect_nodes(self.state, self.select(indexes, self._reach()), request, overwrite=overwrite,
                             retry_failed=retry_failed, timeout=timeout, on_start=on_start, on_done=on_done)

    def put(self, local: str | Path, remote: str, *, indexes: Sequence[int] | None = None,
            timeout: float | None = None, on_start: Callable[[int], None] | None = None,
            on_done: Callable[[PutOutcome], None] | None = None) -> PutResult:
        """Send the file or folder ``local`` to the nodes (all, or ``indexes``) at ``remote`` (absolute,
        ``~/...`` or relative to the home folder; ending with / or an existing folder: into it), one ssh
        stream per node, all at once, each checked against the sha256 sent. Never inside ~/vca (the
        releases and their jobs). Failed nodes are in the result: ``result.raise_for_failures()``."""
        from .put.run import check_local, check_remote, put_nodes

        check_local(local)  # bad input is refused before any node is listed
        check_remote(remote)
        nodes = self.select(indexes, self._reach())
        return put_nodes(self.state, nodes, local, remote, compress=self.record.provider != "local",
                         timeout=timeout, on_start=on_start, on_done=on_done)

    def ssh_argv(self, node: int | str, command: str | None = None, *, into_job: bool = False) -> list[str]:
        """The ssh command line for an interactive session on ``node`` (running ``command`` if given).
        ``into_job`` (no command): the login shell starts in the release folder of the node's job, with
        the job's VCA_* environment (``vca connect N``)."""
        if into_job and not command:
            return [*sshexec.ssh_command(self.state, self._one(node), "-t", batch=False), "--", job_shell_command()]
        argv = sshexec.ssh_command(self.state, self._one(node), batch=False)
        return [*argv, "--", command] if command else argv

    def logs_argv(self, node: int | str, *, proc: int = 0, tail: int = 100, follow: bool = False) -> list[str]:
        """The ssh command line that prints (or follows) the job log of ``node``."""
        return [*sshexec.ssh_command(self.state, self._one(node), "-T"), "--", logs_command(proc, tail, follow)]

    def attach_argv(self, node: int | str, *, proc: int = 0, tmux: bool = False) -> list[str]:
        """The ssh command line that follows the live log of ``node``'s job, or joins its tmux session."""
        if not tmux:
            return self.logs_argv(node, proc=proc, tail=50, follow=True)
        return [*sshexec.ssh_command(self.state, self._one(node), "-t", batch=False), "--",
                tmux_attach_command(proc)]

    def _one(self, ref: int | str) -> Node:
        """The one node ``ref`` names: an index, a name, a role or an address."""
        nodes = self._reach()
        if isinstance(ref, int) or ref.isdigit():
            return self.select([int(ref)], nodes)[0]
        found = self.select(NodeRefs(refs=[ref]), nodes)
        if len(found) > 1:
            raise UsageError(f"'{ref}' names {len(found)} nodes of cluster '{self.name}' "
                             f"({index_ranges([n.index for n in found])}); this takes one",
                             "name one node by index or name (<cluster>-N)")
        return found[0]


def _stream_lines(argv: list[str]) -> Iterator[str]:
    """Lines of a remote command's output as they come; the command is ended when the caller stops."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                yield line.rstrip("\n")
        finally:
            proc.kill()


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
