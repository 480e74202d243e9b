"""A node of a cluster as vca sees it, node roles and node selections.

Node roles: what a node is for in its cluster (head, worker, dev), chosen when it is provisioned.
Every provider keeps a node's role with the node (the lab in its registry, EC2 in the vca:role tag);
the inventory groups nodes by it and the setup stage applies roles per node role. The rules are
checked before anything is made: a known role, and at most one head.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, overload

from .errors import NodeNotFound, UsageError


@dataclass
class Node:
    index: int
    name: str  # <cluster>-<index>: inventory host name, ssh-config alias, hostname on the node
    address: str  # where SSH reaches it
    private_ip: str  # the address other nodes use
    port: int = 22
    user: str = "root"
    role: str = "worker"
    state: str = "running"  # as the provider sees it: running, stopped, down, pending, terminated
    public_address: str | None = None
    instance_id: str | None = None
    host_key: str | None = None  # "<type> <base64>", when the provider knows it before first contact
    details: dict[str, Any] = field(default_factory=dict)  # provider-specific columns for status
    expires_at: float | None = None  # epoch seconds after which the node counts as expired; None: never
    capabilities: tuple[str, ...] = ()  # what the node offers (static hosts: redis, gpu, ...): --where CAP

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


ROLES = ("head", "worker", "dev")  # node roles: what a node is for, whatever made it


def role_for(index: int) -> str:
    return "head" if index == 0 else "worker"


class IndexRanges(Sequence[int]):
    """Node indexes as the user gave them (``--node 1,3-5``): inclusive (lo, hi) ranges in order, kept
    as ranges. A selection is checked against the nodes a cluster has (``missing``, ``within``), never
    expanded blindly: ``0-99999999`` costs two numbers, not a list of a hundred million."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self.ranges = tuple(ranges)
        for lo, hi in self.ranges:
            if not 0 <= lo <= hi:
                raise ValueError(f"bad index range {lo}-{hi}")

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and any(lo <= value <= hi for lo, hi in self.ranges)

    def __iter__(self) -> Iterator[int]:
        return chain.from_iterable(range(lo, hi + 1) for lo, hi in self.ranges)

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...
    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        j = i + len(self) if i < 0 else i
        for lo, hi in self.ranges:
            if 0 <= j <= hi - lo:
                return lo + j
            j -= hi - lo + 1
        raise IndexError(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IndexRanges):
            return self.ranges == other.ranges
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"IndexRanges({self})"

    def __str__(self) -> str:
        return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)

    def missing(self, have: Iterable[int]) -> list[str]:
        """The parts of the selection that are not among ``have``, as '5' or '7-9', in order."""
        present = sorted(set(have))
        out: list[str] = []
        for lo, hi in self.ranges:
            at = lo
            for i in present:  # bounded by the cluster's size, not the range's
                if i < at:
                    continue
                if i > hi:
                    break
                if i > at:
                    out.append(str(at) if i - 1 == at else f"{at}-{i - 1}")
                at = i + 1
            if at <= hi:
                out.append(str(at) if at == hi else f"{at}-{hi}")
        return list(dict.fromkeys(out))

    def within(self, have: Iterable[int]) -> list[int]:
        """The indexes of ``have`` that the selection names: range by range, each once."""
        present = sorted(set(have))
        return list(dict.fromkeys(i for lo, hi in self.ranges for i in present if lo <= i <= hi))


WORKERS = ("worker", "workers")  # where a list is accepted: every worker


class NodeRefs(IndexRanges):
    """A node selection as the user gave it: index ranges (kept as ranges, never expanded) and
    references (``refs``): a name ``<cluster>-<i>``, a role (``head``, ``dev``; ``worker``/``workers``:
    every worker) or an address. ``Cluster.select`` resolves them against the cluster's nodes."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = (), refs: Iterable[str] = (),
                 where: Iterable[str] = ()) -> None:
        super().__init__(ranges)
        self.refs = tuple(refs)
        self.where = tuple(where)  # capabilities every selected node has (``--where CAP``)

    def __bool__(self) -> bool:
        return bool(self.ranges or self.refs or self.where)

    def __str__(self) -> str:
        named = ",".join([super().__str__(), *self.refs] if self.ranges else self.refs)
        return " ".join([named] * bool(named) + [f"where {c}" for c in self.where])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NodeRefs):
            return self.ranges == other.ranges and self.refs == other.refs and self.where == other.where
        return not self.refs and not self.where and super().__eq__(other)

    def named(self) -> NodeRefs:
        """The selection without its capabilities: what the indexes and references name."""
        return NodeRefs(self.ranges, self.refs)


def with_capabilities(cluster: str, where: Sequence[str], chosen: Sequence[Node], every: Sequence[Node]) -> list[Node]:
    """The nodes of ``chosen`` that have every capability of ``where``; refuses an empty result, naming
    the capabilities the cluster's nodes have."""
    picked = [n for n in chosen if all(c in n.capabilities for c in where)]
    if not picked:
        have = sorted({c for n in every for c in n.capabilities})
        raise NodeNotFound(f"cluster '{cluster}' has no {'selected ' if len(chosen) < len(every) else ''}node with "
                         f"capability {' and '.join(where)}",
                         f"capabilities of its nodes: {', '.join(have)}" if have
                         else "its nodes declare no capabilities (static hosts: \"capabilities\" per host)")
    return picked



def resolve(ref: str, nodes: Sequence[Node]) -> list[Node]:
    """The nodes one reference names: index, name, role (``worker``/``workers``: every worker) or
    address (SSH or private); [] when it names none."""
    if ref.isdigit():
        return [n for n in nodes if n.index == int(ref)]
    role = "worker" if ref in WORKERS else ref
    if role in ROLES:
        return [n for n in nodes if n.role == role]
    return [n for n in nodes if ref in (n.name, n.address, n.private_ip, n.public_address, n.instance_id)]


def check_role(role: str | None) -> None:
    """Refuse a role that is not one of ROLES (None: the default rule)."""
    if role is not None and role not in ROLES:
        raise UsageError(f"unknown node role '{role}'", f"--role takes one of {', '.join(ROLES)}")


def for_new_nodes(cluster: str, role: str | None, count: int, existing: Sequence[Node]) -> str | None:
    """The role to give ``count`` new nodes of a cluster whose nodes are ``existing``; None: the
    provider's default rule (node 0 head, others worker). Refuses a second head.

    A cluster that has a head already gets workers by default, even at a free index 0 (EC2 reuses
    the lowest free index).
    """
    check_role(role)
    heads = [n.name for n in existing if n.role == "head"]
    if role is None:
        return "worker" if heads else None
    if role != "head" or count == 0:  # converging on a size the cluster has adds nobody
        return role
    if heads:
        raise UsageError(f"cluster '{cluster}' already has a head ({heads[0]}); a cluster has at most one",
                         "add these nodes as --role worker or --role dev")
    if count > 1:
        raise UsageError(f"--role head would add {count} heads; a cluster has at most one",
                         "add one head, and the other nodes with --role worker or --role dev")
    return role
