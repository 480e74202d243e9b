"""The nodes an EC2 cluster should have, remembered by vca, and which of them are gone (``vca heal``).

EC2 forgets a terminated instance after about an hour, tags and all, so the listing alone cannot tell
a node that died (a spot interruption, a termination in the console) from one that never existed.
vca keeps, per index, what it needs to bring the node back as it was (clusters/<name>/ec2-members.json):
its role, whether it was a spot instance (and at which highest price), its vca:expires-at tag, its
last instance id and private address. The record is written where vca changes the membership
(provision, import, remove, teardown, heal); EC2 tags stay the source of truth for live nodes.

``gone_state`` is the one place that decides that a node's machine is gone for good.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ...node import Node, role_for
from ...state import ClusterState, atomic_write
from .api import TAG_EXPIRES, Instance

# EC2 states of an instance that will never run again. Instances in them are not listed as live
# (api.LIVE_STATES); an instance missing from the listing altogether is gone too.
GONE_STATES = ("shutting-down", "terminated")


def gone_state(inst: Instance | None) -> str | None:
    """How the node whose instance is ``inst`` (None: not in the listing) is gone, or None when it is
    not: "terminated" for an instance terminated, shutting down or no longer in the account. The node
    state `vca heal` replaces (cluster.GONE); an interruption recorded on the node adds its own
    state here."""
    if inst is None or inst.state in GONE_STATES:
        return "terminated"
    return None


@dataclass(frozen=True)
class Member:
    """What vca remembers of one node, to bring it back under its index."""

    index: int
    role: str
    instance: str = ""  # the last instance id seen under this index
    spot: bool = False
    max_price: str | None = None  # of the spot request vca made (None: the on-demand price)
    expires: str | None = None  # its vca:expires-at tag
    private_ip: str = ""
    instance_type: str = ""


class Members:
    """The record of an EC2 cluster's nodes by index (clusters/<name>/ec2-members.json)."""

    def __init__(self, state: ClusterState) -> None:
        self.path: Path = state.dir / "ec2-members.json"

    def load(self) -> dict[int, Member]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        fields = set(Member.__dataclass_fields__)
        out = {}
        for key, value in data.items():
            if str(key).isdigit() and isinstance(value, dict):
                out[int(key)] = Member(**{k: v for k, v in value.items() if k in fields and k != "index"},
                                       index=int(key))
        return out

    def save(self, members: dict[int, Member]) -> None:
        if not self.path.parent.is_dir():
            return
        doc = {str(i): {k: v for k, v in asdict(m).items() if k != "index"} for i, m in sorted(members.items())}
        atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True) + "\n")

    def remember(self, live: Iterable[Instance], max_price: dict[str, str | None] | None = None) -> None:
        """Record every live, indexed instance as the node of its index (``max_price``: by instance id,
        for the spot instances this run launched); entries of gone nodes are kept."""
        self.save(merged(self.load(), live, max_price or {}))

    def forget(self, indexes: Iterable[int] | None) -> None:
        """Drop the nodes ``indexes`` (None: all) once vca removed them."""
        if indexes is None:
            self.path.unlink(missing_ok=True)
            return
        members = self.load()
        drop = set(indexes) & set(members)
        if drop:
            self.save({i: m for i, m in members.items() if i not in drop})


def merged(members: dict[int, Member], live: Iterable[Instance], max_price: dict[str, str | None]
           ) -> dict[int, Member]:
    """``members`` with the live, indexed instances recorded under their indexes."""
    out = dict(members)
    for inst in live:
        if inst.index is None or gone_state(inst) is not None:
            continue
        old = out.get(inst.index)
        spot = inst.lifecycle == "spot"
        price = max_price.get(inst.id) if inst.id in max_price else (
            old.max_price if old is not None and old.instance == inst.id else None)
        out[inst.index] = Member(index=inst.index, role=inst.role or role_for(inst.index), instance=inst.id,
                                 spot=spot, max_price=price if spot else None,
                                 expires=inst.tags.get(TAG_EXPIRES) or (old.expires if old else None),
                                 private_ip=inst.private_ip or "", instance_type=inst.instance_type)
    return out


def gone_members(members: dict[int, Member], live: Iterable[Instance]) -> list[Member]:
    """The recorded nodes no live instance stands for (by index), in index order."""
    here = {i.index for i in live if i.index is not None and gone_state(i) is None}
    return [m for i, m in sorted(members.items()) if i not in here]


@dataclass(frozen=True)
class HealGroup:
    """Gone nodes brought back by one launch: the same role (so the same type and image) and market."""

    role: str
    spot: bool
    max_price: str | None
    indexes: tuple[int, ...]


def heal_groups(gone: Iterable[Node], members: dict[int, Member]) -> list[HealGroup]:
    """The launches that bring ``gone`` back: one per (role, spot, max price), heads first, then by
    lowest index. A node vca has no record of comes back on demand, with the role it was listed with."""
    groups: dict[tuple[str, bool, str | None], list[int]] = {}
    for n in gone:
        m = members.get(n.index) or Member(index=n.index, role=n.role)
        groups.setdefault((m.role or n.role, m.spot, m.max_price if m.spot else None), []).append(n.index)
    order = sorted(groups.items(), key=lambda kv: (kv[0][0] != "head", min(kv[1])))
    return [HealGroup(role, spot, price, tuple(sorted(ix))) for (role, spot, price), ix in order]


def healed(members: dict[int, Member], new: Iterable[Instance]) -> dict[int, Member]:
    """``members`` after a heal: each index taken by its new instance, role, market and expiry kept."""
    out = dict(members)
    for inst in new:
        if inst.index is None:
            continue
        old = out.get(inst.index)
        if old is None:
            out.update(merged({}, [inst], {}))
            continue
        out[inst.index] = replace(old, instance=inst.id, private_ip=inst.private_ip or old.private_ip,
                                  instance_type=inst.instance_type or old.instance_type)
    return out
