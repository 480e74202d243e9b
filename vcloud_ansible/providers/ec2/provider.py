"""Provider ``ec2``: nodes are EC2 instances; the source of truth is their tags.

    vca:cluster  the cluster name          vca:index      the node's index (stable, unique)
    vca:role     head | worker | dev       vca:owner      who made it (<user>@<host>)
    vca:expires-at  when it counts as expired (ISO 8601 UTC, or never)
    vca:ssh_host / vca:ssh_port  optional: where SSH reaches the node (bastions, port forwards)

Provisioning runs playbooks/internal/provision.yml (role provider_ec2) after read-only checks;
teardown runs playbooks/internal/teardown.yml and then verifies that nothing tagged with the cluster
remains. Listing the nodes is one DescribeInstances call per 1000 instances. Credentials only come
from the AWS chain.
"""

from __future__ import annotations

import contextlib
import email.mime.multipart
import email.mime.text
import fcntl
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace as with_changes
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from ... import paths
from ...errors import ClusterNotFound, EnvironmentProblem, ProviderError, UsageError, VcaError
from ...node import Node, role_for
from ...state import ClusterState, atomic_write
from ...storage import init_script
from ..base import Say
from . import api as ec2_api
from . import settings as ec2_settings
from .api import Instance, Plan
from .members import HealGroup, Member, Members, gone_members, gone_state, heal_groups, healed
from .settings import SETTINGS, Ec2Settings, parse_ports
from .ssh import HostKeys, learn_host_keys, ssh_target

INVENTORY_NAME = "inventory.aws_ec2.yml"  # the aws_ec2 plugin only reads files ending in aws_ec2.yml
REQUEST_FILE = "ec2-request.json"
PLAYBOOK_TIMEOUT = 3600
POWER_TIMEOUT = 600  # seconds for instances to stop or start
EXPIRY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # of the vca:expires-at tag (UTC)


class Ec2Provider:
    name = "ec2"
    settings = SETTINGS

    def __init__(self) -> None:
        # Set by prepare(): the settings and checked plan of the coming create().
        self._run: tuple[Ec2Settings, Plan] | None = None
        # Set by prepare() when a run without a role adds a head and workers of their own types.
        self._parts: tuple[tuple[Ec2Settings, Plan], tuple[Ec2Settings, Plan]] | None = None

    # -- checks ------------------------------------------------------------------------------------
    def check(self) -> None:
        """boto3 is there and the AWS chain yields credentials (no AWS call)."""
        try:
            import boto3  # noqa: F401
        except ImportError:
            raise EnvironmentProblem("provider ec2 needs boto3", "pip install boto3") from None
        if not ec2_api.have_credentials():
            raise EnvironmentProblem(
                "no AWS credentials found",
                "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`",
            )

    def prepare(self, stored: dict[str, Any], overrides: dict[str, Any], creating: bool) -> dict[str, Any]:
        """Resolve the settings and check them against EC2 (read-only) before anything is created: the
        image and type of each node role this run may add (its own role, or head and worker).

        Returns the settings to store with the cluster.
        """
        resolved = ec2_settings.resolve(stored, overrides, creating=creating)
        s = Ec2Settings.from_dict(resolved)
        ec2 = ec2_api.client(s.region)
        plan = ec2_api.preflight(ec2, s.for_role(s.role))
        self._run = (s, plan)
        self._parts = None
        if s.role is None and (s.head_instance_type, s.head_image) != (s.worker_instance_type, s.worker_image):
            # node 0 head and the others workers, of different types or images: two launches, head first
            head, worker = s.for_role("head"), s.for_role("worker")
            self._parts = ((head, ec2_api.role_plan(ec2, head, plan)), (worker, ec2_api.role_plan(ec2, worker, plan)))
        return ec2_settings.stored_part(resolved)

    # -- the Provider protocol -------------------------------------------------------------------
    def create(self, state: ClusterState, count: int, say: Say, role: str | None = None) -> list[Node]:
        """Launch ``count`` nodes, then wait until each answers SSH and record its host key.

        Nodes that never answer are terminated again: all of them or none. When the cluster had no
        instance before, a failed run also removes the security group, key pair and launch template
        (everything tagged with the cluster), checked; what cannot be removed is named in the error.
        The ``role`` of the new nodes comes through the per-run ``role`` setting, checked by prepare().
        """
        s, _plan = self._pending_run(state)
        ec2 = ec2_api.client(s.region)
        with _locked(state):
            before = self._before_launch(state, s)  # refuses another owner's cluster: nothing made yet
            known = {i.id for i in before if i.index is not None}
            keys = HostKeys(state)
            with_key = set(keys.load())

            def is_new(i: Instance) -> bool:
                # Launched now, or left without a host key by an interrupted run: not in service yet.
                return i.index is not None and i.state in ("pending", "running") and (
                    i.id not in known or i.id not in with_key)

            launched = False
            parts = self._parts
            self._parts = None
            try:
                if parts is not None and not any(i.role == "head" for i in before):
                    # the head first, then the workers, each with its own type and image
                    (hs, hplan), (ws, wplan) = parts
                    self._run = (hs, hplan)
                    self._launch_after(state, hs, before, 1, say)
                    if count > 1:
                        self._run = (ws, wplan)
                        self._launch_after(state, ws, self._before_launch(state, s), count - 1, say)
                else:
                    self._launch_after(state, s.for_role(s.role), before, count, say)
                launched = True
                new_ids, instances = learn_host_keys(
                    lambda: ec2_api.cluster_instances(ec2, state.name, s.region), is_new, s.ssh_via,
                    s.ssh_timeout, keys, say)
            except VcaError as exc:
                if not before:  # nothing of the cluster ran before this run: remove all it made
                    self._roll_back_all(state, s, exc, say)
                elif launched and isinstance(exc, ProviderError):
                    new = [i for i in ec2_api.cluster_instances(ec2, state.name, s.region) if is_new(i)]
                    say(f"terminating the {len(new)} new node{'s' if len(new) != 1 else ''}")
                    self._destroy_locked(state, s, [i.index for i in new if i.index is not None], say)
                raise
            Members(state).remember(instances, {iid: s.max_price for iid in new_ids})
        return [n for n in self._nodes(state, s, instances) if n.instance_id in new_ids]

    def _roll_back_all(self, state: ClusterState, s: Ec2Settings, exc: VcaError, say: Say) -> None:
        """After a failed first launch: terminate every instance of the cluster and delete its group,
        key pair and template, checked by the teardown playbook. Raises naming what is left when that
        fails (the cluster is then kept, so that `vca teardown` can finish)."""
        say("removing what this run made (instances, security group, key pair, launch template)")
        try:
            self._destroy_locked(state, s, None, say)
        except VcaError as cleanup:
            try:
                left = self.leftovers(state)
            except VcaError:
                left = []
            shown = (", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
                     if left else cleanup.one_line())
            raise ProviderError(
                f"{exc.message}; removing what this run made left {shown}",
                f"cluster '{state.name}' is kept: `vca -c {state.name} teardown` removes the rest",
            ) from None
        _clear_request(state)

    def launch(self, state: ClusterState, count: int, say: Say) -> set[str]:
        """The EC2 half of create(): checks, then the provision playbook; returns the new instance ids.

        Does not wait for SSH (bench/provision.py measures this part on moto).
        """
        s, _plan = self._pending_run(state)
        with _locked(state):
            known = self._launch_locked(state, count, say)
        after = ec2_api.cluster_instances(ec2_api.client(s.region), state.name, s.region)
        return {i.id for i in after if i.index is not None and i.id not in known}

    def _pending_run(self, state: ClusterState) -> tuple[Ec2Settings, Plan]:
        if self._run is None:
            self.prepare(state.load().settings, {}, creating=False)
        assert self._run is not None
        return self._run

    def _launch_locked(self, state: ClusterState, count: int, say: Say) -> set[str]:
        """Run the provision playbook; returns the ids of the nodes that were there before."""
        s, _plan = self._pending_run(state)
        before = self._before_launch(state, s)
        self._launch_after(state, s.for_role(s.role), before, count, say)
        return {i.id for i in before if i.index is not None}

    def _before_launch(self, state: ClusterState, s: Ec2Settings) -> list[Instance]:
        """The cluster's instances before a launch; refuses when another owner's instances carry its tag."""
        before = ec2_api.cluster_instances(ec2_api.client(s.region), state.name, s.region)
        foreign = sorted({i.owner for i in before if i.owner and i.owner != s.owner})
        if foreign:
            raise ProviderError(
                f"EC2 already has instances tagged vca:cluster={state.name} owned by {foreign[0]}",
                "pick another cluster name with -c",
            )
        return before

    def _launch_after(self, state: ClusterState, s: Ec2Settings, before: list[Instance], count: int,
                      say: Say) -> None:
        """Run the provision playbook for ``count`` more nodes than ``before``."""
        _s, plan = self._pending_run(state)
        self._run = None
        orphans = [i for i in before if i.index is None]
        if orphans:
            say(f"adopting {len(orphans)} instance{'s' if len(orphans) != 1 else ''} an interrupted "
                "run left without an index")
        token = _request_token(state, count)
        launch = max(0, count - len(orphans))
        if launch:
            say(f"launching {launch} EC2 instance{'s' if launch != 1 else ''} ({s.instance_type}, "
                f"{plan.image_id}) in {s.region}")
        else:
            say("nothing to launch; checking the cluster's key pair, security group and template")
        # New nodes never take the index of a node that is gone: `vca heal` brings that one back.
        reserved = [m.index for m in gone_members(Members(state).load(), before)]
        self._playbook(state, "provision", _extravars(state, s, plan, count, token, reserved=reserved),
                       secrets=_secret_vars(state, s), what="EC2 provisioning")
        _clear_request(state)

    def nodes(self, state: ClusterState) -> list[Node]:
        """The live instances of the cluster, and the nodes vca made that are gone (state
        "terminated", see members.gone_state) until `vca heal` replaces or `vca remove` drops them."""
        s = _settings(state)
        ec2 = ec2_api.client(s.region)
        return self._nodes(state, s, ec2_api.cluster_instances(ec2, state.name, s.region), Members(state).load())

    def destroy(self, state: ClusterState, indexes: list[int] | None, say: Say) -> list[Node]:
        if indexes is not None and not indexes:
            return []
        s = _settings(state)
        with _locked(state):
            gone = self._destroy_locked(state, s, indexes, say)
            Members(state).forget(indexes)  # also the nodes among them that were gone already
            return gone

    def adopt(self, state: ClusterState, ids: list[str], say: Say, role: str | None = None) -> list[Node]:
        """Make the running instances ``ids`` nodes of the cluster with the next free indexes (tags
        vca:cluster, vca:index, vca:role, vca:owner, vca:expires-at, Name) and learn their host keys.
        Refuses, before tagging anything, an id that does not exist, is not running, or is tagged for
        another cluster. Only the instances named are read or tagged."""
        s = _settings(state)
        ec2 = ec2_api.client(s.region)
        with _locked(state):
            found = ec2_api.instances_by_id(ec2, ids, s.region)
            missing = [iid for iid in ids if iid not in found]
            if missing:
                raise UsageError(f"no EC2 instance {', '.join(missing)} in region {s.region}",
                                 "check the ids (`aws ec2 describe-instances`) and the cluster's region")
            for iid in ids:
                inst = found[iid]
                other = inst.tags.get(ec2_api.TAG_CLUSTER)
                if other and other != state.name:
                    raise UsageError(f"instance {iid} belongs to cluster '{other}' (tag vca:cluster), not "
                                     f"'{state.name}'", "vca imports only instances of no cluster")
                if other == state.name and inst.index is not None:
                    raise UsageError(f"instance {iid} is node {inst.index} of cluster '{state.name}' already")
                if inst.state not in ("pending", "running"):
                    raise UsageError(f"instance {iid} is {inst.state}, not running", "start it first")
            live = ec2_api.cluster_instances(ec2, state.name, s.region)
            used = {i.index for i in live if i.index is not None}
            used |= {m.index for m in gone_members(Members(state).load(), live)}  # kept for `vca heal`
            free = (i for i in range(max(used, default=-1) + len(ids) + 2) if i not in used)
            expires = _expires_at(s)
            for iid in ids:
                index = next(free)
                tags = {**dict(s.tags), ec2_api.TAG_CLUSTER: state.name, ec2_api.TAG_INDEX: str(index),
                        ec2_api.TAG_ROLE: role or role_for(index), ec2_api.TAG_OWNER: s.owner,
                        ec2_api.TAG_EXPIRES: expires, "Name": f"{state.name}-{index}"}
                with ec2_api.aws_errors(s.region, "EC2 CreateTags"):
                    ec2.create_tags(Resources=[iid], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
                say(f"instance {iid} is node {index}")
            wanted = set(ids)
            _, instances = learn_host_keys(
                lambda: ec2_api.cluster_instances(ec2, state.name, s.region), lambda i: i.id in wanted,
                s.ssh_via, s.ssh_timeout, HostKeys(state), say)
            Members(state).remember(instances)
        return [n for n in self._nodes(state, s, instances) if n.instance_id in wanted]

    def replace(self, state: ClusterState, gone: list[Node], say: Say,
                ready: Callable[[list[Node]], None] | None = None) -> list[Node]:
        """Healable: new instances under the indexes of the ``gone`` nodes, each as the node it replaces
        was made (role, and so that role's instance type and image; spot or on-demand and the highest
        price; the cluster's tags and the same vca:expires-at), its host key learnt on first contact.

        What is left of a gone node (an instance that still runs) is terminated first. One launch per
        role and market (usually one). All or none: when a launch, the wait for SSH or ``ready`` (the
        caller's check of the new nodes) fails or is interrupted, the new instances are terminated and
        the record of the cluster's nodes is left as it was, so the nodes are still listed as gone.
        """
        s = _settings(state)
        ec2 = ec2_api.client(s.region)
        members = Members(state)
        wanted = sorted(n.index for n in gone)
        with _locked(state):
            before = self._before_launch(state, s)  # refuses another owner's cluster: nothing made yet
            record = members.load()
            leftover = sorted({i.index for i in before if i.index in wanted})
            if leftover:  # a gone node whose instance still exists (not terminated yet)
                self._destroy_locked(state, s, leftover, say)
                before = [i for i in before if i.index not in leftover]
            # A replacement keeps the expiry of the node it replaces: an expired one would be made only to
            # count as expired at once (and an expiry guard would end it again).
            now = time.time()
            expired = [i for i in wanted if i in record and (parse_expiry(record[i].expires) or now + 1) <= now]
            if expired:
                names = ", ".join(f"{state.name}-{i}" for i in expired)
                raise UsageError(f"{names} expired (vca:expires-at {record[expired[0]].expires}): not healed",
                                 f"`vca remove {','.join(map(str, expired))}` drops "
                                 f"{'them' if len(expired) != 1 else 'it'}; `vca provision` adds new nodes")
            known = {i.id for i in before}
            reserved = [m.index for m in gone_members(record, before) if m.index not in wanted]
            # Every launch checked (read-only: image, type, network) before anything is made.
            launches: list[tuple[HealGroup, Ec2Settings, Plan]] = []
            for group in heal_groups(gone, record):
                gs = with_changes(s.for_role(group.role), spot=group.spot, max_price=group.max_price)
                plan = ec2_api.preflight(ec2, gs) if not launches else ec2_api.role_plan(ec2, gs, launches[0][2])
                launches.append((group, gs, plan))
            try:
                for group, gs, plan in launches:
                    names = ", ".join(f"{state.name}-{i}" for i in group.indexes)
                    say(f"launching {names} ({group.role}, {gs.instance_type}, {plan.image_id}"
                        f"{', spot' if group.spot else ''}) in {s.region}")
                    expires = [e for e in (record[i].expires for i in group.indexes if i in record) if e]
                    extravars = _extravars(state, gs, plan, len(group.indexes), "", indexes=list(group.indexes),
                                           reserved=reserved, expires_at=min(expires) if expires else None)
                    self._playbook(state, "provision", extravars, secrets=_secret_vars(state, gs),
                                   what=f"launching the replacement of {names}")
                new_ids, instances = learn_host_keys(
                    lambda: ec2_api.cluster_instances(ec2, state.name, s.region),
                    lambda i: i.index in wanted and i.id not in known and i.state in ("pending", "running"),
                    s.ssh_via, s.ssh_timeout, HostKeys(state), say)
                new = [n for n in self._nodes(state, s, instances) if n.instance_id in new_ids]
                if ready is not None:
                    ready(new)
            except (VcaError, KeyboardInterrupt) as exc:
                self._undo_replace(state, s, wanted, exc, say)
                raise
            members.save(healed(record, [i for i in instances if i.id in new_ids]))
        return new

    def _undo_replace(self, state: ClusterState, s: Ec2Settings, indexes: list[int], exc: BaseException,
                      say: Say) -> None:
        """After a failed heal: terminate every instance under ``indexes`` (only new ones can be there);
        the record of the nodes is not touched, so they stay listed as gone. Raises naming what is left
        when that fails."""
        say(f"{'interrupted: ' if isinstance(exc, KeyboardInterrupt) else ''}terminating the replacement "
            f"instances of node{'s' if len(indexes) != 1 else ''} {', '.join(map(str, indexes))}")
        try:
            self._destroy_locked(state, s, indexes, say)
        except VcaError as cleanup:
            first = exc.message if isinstance(exc, VcaError) else "heal interrupted"
            raise ProviderError(f"{first}; terminating the replacement instances failed too: {cleanup.one_line()}",
                                "`vca status` shows them; `vca remove N` or `vca teardown` removes them") from None

    def power_off(self, state: ClusterState, indexes: list[int], say: Say) -> list[Node]:
        """StopInstances on the running nodes among ``indexes`` (their EBS disks stay), waited for."""
        return self._power(state, indexes, say, on=False)

    def power_on(self, state: ClusterState, indexes: list[int], say: Say) -> list[Node]:
        """StartInstances on the stopped nodes among ``indexes``, waited for until they run (with new
        addresses); their host keys stay pinned to the instance ids, so SSH checks them again."""
        return self._power(state, indexes, say, on=True)

    def _power(self, state: ClusterState, indexes: list[int], say: Say, on: bool) -> list[Node]:
        s = _settings(state)
        ec2 = ec2_api.client(s.region)
        want, settled = ("stopped", "running") if on else ("running", "stopped")
        with _locked(state):
            targets = [i for i in ec2_api.cluster_instances(ec2, state.name, s.region)
                       if i.index in indexes and i.state in (want, "pending" if on else "stopping")]
            if not targets:
                return []
            ids = [i.id for i in targets]
            verb = "starting" if on else "stopping"
            say(f"{verb} {len(ids)} EC2 instance{'s' if len(ids) != 1 else ''}")
            call = ec2.start_instances if on else ec2.stop_instances
            with ec2_api.aws_errors(s.region, f"EC2 {'StartInstances' if on else 'StopInstances'}"):
                for at in range(0, len(ids), 1000):  # at most 1000 ids per call
                    call(InstanceIds=ids[at:at + 1000])
            deadline = time.monotonic() + POWER_TIMEOUT
            while True:
                now = {i.id: i for i in ec2_api.cluster_instances(ec2, state.name, s.region)}
                late = [iid for iid in ids if iid in now and now[iid].state != settled]
                if not late:
                    break
                if time.monotonic() > deadline:
                    raise ProviderError(f"{len(late)} instance{'s' if len(late) != 1 else ''} not {settled} after "
                                        f"{POWER_TIMEOUT} s: {', '.join(late[:5])}", "see `vca status`")
                time.sleep(2)
            return self._nodes(state, s, [now[iid] for iid in ids if iid in now])

    def inventory_source(self, state: ClusterState) -> Path | None:
        """The cluster's aws_ec2 inventory file, (re)written from the template when it changed."""
        s = _settings(state)
        path = state.dir / INVENTORY_NAME
        text = render_inventory(state, s, path)
        if not path.exists() or path.read_text() != text:
            atomic_write(path, text)
        return path

    def leftovers(self, state: ClusterState) -> list[str]:
        """What still exists in EC2 with the cluster's tag (instances, group, key pair, template, volumes)."""
        s = _settings(state)
        return ec2_api.leftovers(ec2_api.client(s.region), state.name, s.region)

    # -- helpers -----------------------------------------------------------------------------------
    def _destroy_locked(self, state: ClusterState, s: Ec2Settings, indexes: list[int] | None,
                        say: Say) -> list[Node]:
        ec2 = ec2_api.client(s.region)
        before = ec2_api.cluster_instances(ec2, state.name, s.region)
        victims = [i for i in before if indexes is None or i.index in indexes]
        if victims:
            say(f"terminating {len(victims)} EC2 instance{'s' if len(victims) != 1 else ''}")
        extravars: dict[str, Any] = {"provider_ec2_cluster": state.name, "provider_ec2_region": s.region,
                                     "provider_ec2_indexes": sorted(indexes or [])}
        # For the whole cluster the playbook fails unless nothing tagged with it is left.
        self._playbook(state, "teardown", extravars, secrets=None, what="EC2 teardown")
        if indexes is None:
            say("deleted the security group, key pair and launch template; nothing tagged is left")
        HostKeys(state).keep_only(i.id for i in before if i not in victims)
        return self._nodes(state, s, [i for i in victims if i.index is not None])

    @staticmethod
    def _playbook(state: ClusterState, name: str, extravars: dict[str, Any],
                  secrets: dict[str, Any] | None, what: str) -> None:
        from ...playbook.runner import run_playbook

        result = run_playbook(
            paths.playbooks_dir() / "internal" / f"{name}.yml",
            inventory=paths.resource_root() / "inventory" / "localhost.yml", state_dir=state.dir,
            extravars=extravars, secret_extravars=secrets, hosts_expected=["localhost"],
            title=f"{name} (ec2)", timeout=PLAYBOOK_TIMEOUT,
        )
        result.raise_for_failures(what)

    @staticmethod
    def _nodes(state: ClusterState, s: Ec2Settings, instances: list[Instance],
               members: dict[int, Member] | None = None) -> list[Node]:
        """Nodes of the indexed ``instances``; with ``members``, also the recorded nodes that are gone."""
        keys = HostKeys(state).load()
        nodes = [_node(state.name, i, s, keys.get(i.id)) for i in instances if i.index is not None]
        if members:
            nodes += [_gone_node(state.name, m, s) for m in gone_members(members, instances)]
        return sorted(nodes, key=lambda n: n.index)


def _node(cluster: str, i: Instance, s: Ec2Settings, host_key: str | None) -> Node:
    assert i.index is not None
    target = ssh_target(i, s.ssh_via)
    state = gone_state(i) or (i.state if target is not None or i.state != "running" else "no-ssh-address")
    return Node(
        index=i.index, name=f"{cluster}-{i.index}", address=target[0] if target else "",
        port=target[1] if target else 22, private_ip=i.private_ip or "", user=s.user,
        role=i.role or role_for(i.index), state=state, public_address=i.public_ip, instance_id=i.id,
        host_key=host_key,
        details={"instance": i.id, "type": i.instance_type, "zone": i.zone, "lifecycle": i.lifecycle,
                 "launched": i.launch_time, "public_ip": i.public_ip or "-",
                 "expires": i.tags.get(ec2_api.TAG_EXPIRES, "-")},
        expires_at=parse_expiry(i.tags.get(ec2_api.TAG_EXPIRES)),
    )


def _gone_node(cluster: str, m: Member, s: Ec2Settings) -> Node:
    """A node vca made whose instance is gone: no address to reach (never the old one: EC2 may have
    handed it to someone else), listed until `vca heal` or `vca remove`."""
    return Node(
        index=m.index, name=f"{cluster}-{m.index}", address="", private_ip=m.private_ip, user=s.user,
        role=m.role, state=gone_state(None) or "terminated", instance_id=m.instance or None,
        details={"instance": m.instance or "-", "type": m.instance_type or "-", "zone": "-",
                 "lifecycle": "spot" if m.spot else "on-demand", "launched": "-", "public_ip": "-",
                 "expires": m.expires or "-"},
    )


def parse_expiry(tag: str | None) -> float | None:
    """A vca:expires-at tag as epoch seconds; None for "never", a missing tag or one vca did not write."""
    try:
        return datetime.strptime(tag or "", EXPIRY_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _settings(state: ClusterState) -> Ec2Settings:
    spec = state.load()
    if spec.provider != "ec2":
        raise ClusterNotFound(f"cluster '{state.name}' uses provider '{spec.provider}', not ec2")
    return Ec2Settings.from_dict(spec.settings)


@contextlib.contextmanager
def _locked(state: ClusterState) -> Iterator[None]:
    """One provision or teardown of a cluster at a time on this machine (indexes must not collide)."""
    with open(state.dir / ".ec2.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# -- the launch request --------------------------------------------------------------------------------


def _request_token(state: ClusterState, count: int) -> str:
    """The RunInstances idempotency token of this request.

    The request is recorded before launching and cleared after its nodes are indexed; a run that
    was interrupted in between and is retried with the same count sends the same token, so EC2
    returns the instances of the first attempt instead of launching new ones.
    """
    path = state.dir / REQUEST_FILE
    with contextlib.suppress(OSError, ValueError):
        old = json.loads(path.read_text())
        if isinstance(old, dict) and old.get("count") == count and isinstance(old.get("id"), str):
            return _token(state.name, old["id"])
    rid = uuid.uuid4().hex
    atomic_write(path, json.dumps({"id": rid, "count": count, "created": time.time()}) + "\n")
    return _token(state.name, rid)


def _token(cluster: str, rid: str) -> str:
    return "vca-" + hashlib.sha256(f"{cluster}/{rid}".encode()).hexdigest()[:56]  # at most 64 characters


def _clear_request(state: ClusterState) -> None:
    (state.dir / REQUEST_FILE).unlink(missing_ok=True)


def _expires_at(s: Ec2Settings) -> str:
    seconds = s.lifetime_seconds
    if seconds is None:
        return "never"
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime(EXPIRY_FORMAT)


def _extravars(state: ClusterState, s: Ec2Settings, plan: Plan, count: int, token: str, *,
               reserved: list[int] | None = None, indexes: list[int] | None = None,
               expires_at: str | None = None) -> dict[str, Any]:
    """Every provider_ec2_* variable of the provision playbook, from the settings and the checks.
    ``indexes``: the new nodes take these (heal); ``reserved``: indexes they never take."""
    ports = [dict(zip(("from_port", "to_port", "proto"), parse_ports(p), strict=True)) for p in s.open_ports]
    return {
        "provider_ec2_cluster": state.name,
        "provider_ec2_owner": s.owner,
        "provider_ec2_region": s.region,
        "provider_ec2_tags": dict(s.tags),
        "provider_ec2_count": count,
        "provider_ec2_indexes": sorted(indexes or []),
        "provider_ec2_reserved_indexes": sorted(reserved or []),
        "provider_ec2_client_token": token,
        "provider_ec2_role": s.role or "",
        "provider_ec2_expires_at": expires_at or _expires_at(s),
        "provider_ec2_image_id": plan.image_id,
        "provider_ec2_instance_type": s.instance_type,
        "provider_ec2_root_volume_size": s.root_volume_size or 0,
        "provider_ec2_root_device_name": plan.root_device or "/dev/xvda",
        "provider_ec2_instance_store": plan.instance_store,
        "provider_ec2_instance_profile": s.instance_profile or "",
        "provider_ec2_spot": s.spot,
        "provider_ec2_spot_max_price": s.max_price or "",
        "provider_ec2_shutdown_behavior": s.shutdown_behavior,
        "provider_ec2_public_key": state.public_key(),
        "provider_ec2_key_name": s.key_name or "",
        "provider_ec2_security_group_id": s.security_group or "",
        "provider_ec2_vpc_id": plan.vpc_id or "",
        "provider_ec2_subnet_id": plan.subnet_id or "",
        "provider_ec2_public_ip": s.ssh_via == "public",
        "provider_ec2_ssh_cidrs": plan.ssh_cidrs,
        "provider_ec2_open_ports": ports,
    }


def _secret_vars(state: ClusterState, s: Ec2Settings) -> dict[str, Any] | None:
    """The user-data goes to Ansible through a private file, never into artifacts."""
    data = user_data(state, s)
    return {"provider_ec2_user_data": data} if data else None


def user_data(state: ClusterState, s: Ec2Settings) -> str:
    """The init script; with an existing key pair, plus a cloud-config part authorizing the cluster key.

    vca's own SSH always uses the cluster key, whatever key pair the instances were launched with.
    """
    script = ""
    if s.user_data:
        try:
            script = Path(s.user_data).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read user-data {s.user_data}: {exc.strerror}") from None
    parts = [p for p in (script, init_script.boot_script(state)) if p]  # the cluster's init script last
    if s.key_name:
        parts.insert(0, "#cloud-config\n" + yaml.safe_dump({"ssh_authorized_keys": [state.public_key()]},
                                                           width=1 << 16))
    if len(parts) <= 1:
        return "".join(parts)
    msg = email.mime.multipart.MIMEMultipart()
    for part in parts:
        kind = "cloud-config" if part.startswith("#cloud-config") else "x-shellscript"
        msg.attach(email.mime.text.MIMEText(part, kind))
    return msg.as_string()


# -- the aws_ec2 inventory -----------------------------------------------------------------------------


_HOST_EXPRESSIONS = {
    "public": "tags.get('vca:ssh_host') or (public_ip_address | default(private_ip_address, true))",
    "private": "tags.get('vca:ssh_host') or private_ip_address",
    # Never an instance address: a node without the tag gets a name that cannot resolve.
    "tag": "tags.get('vca:ssh_host') or 'no-vca-ssh-host-tag.invalid'",
}
_HOST_TEXT = {"public": "the public address (the private one when there is none)",
              "private": "the private address", "tag": "nothing (ssh_via: tag)"}


def render_inventory(state: ClusterState, s: Ec2Settings, path: Path) -> str:
    import jinja2

    from ...remote.access import ssh_options

    opts = ssh_options(state)
    common = " ".join(f"-o {k}={v}" for k, v in opts.items() if k not in ("IdentityFile", "ConnectTimeout"))
    for value in (common, str(state.key_path), s.user):
        if "'" in value:
            raise UsageError(f"a quote in '{value}' cannot go into the inventory",
                             "rename the folder or the user")
    template = (paths.resource_root() / "inventory" / "aws_ec2.yml.j2").read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.from_string(template).render(
        cluster=state.name, path=str(path), region=s.region, user=s.user, key_file=str(state.key_path),
        ssh_common_args=common, ansible_host=_HOST_EXPRESSIONS[s.ssh_via], ssh_via_text=_HOST_TEXT[s.ssh_via],
    )
