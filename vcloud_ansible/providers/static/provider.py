"""Provider ``static``: hosts that exist already (the old "ad-hoc" clusters). vca makes no machine and
never powers one off: it adopts the hosts named (first contact pins each host key and authorizes the
cluster's own key with the user's login) and, at teardown, takes everything of vca off them again.

The cluster's record keeps the hosts asked for (settings ``hosts``, ``user``, ``port``, ``identity``);
its folder keeps static.json, the source of truth for nodes: each adopted host with its index, role,
capabilities and pinned key.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from ...errors import ProviderError, RemoteFailed, UsageError
from ...node import Node, role_for
from ...remote.ssh import parallel
from ...state import ClusterState, atomic_write
from ..base import Say
from ..settings import Setting, shown
from . import contact
from .hosts import HostSpec, parse_hosts

NODES_FILE = "static.json"
HINT = "add existing hosts with `vca create NAME --static HOST ...`"


class HostsSetting(Setting):
    """The ``hosts`` setting: text (``user@host:port``, a JSON object) or, in a spec file, mappings."""

    def coerce(self, value: Any, name: str | None = None) -> Any:
        items = [value] if isinstance(value, str | dict) else value
        if not isinstance(items, list | tuple):
            raise UsageError(f"{name or self.flag} must be a list of hosts, got '{shown(value)}'")
        try:
            parse_hosts(items)  # checked now; the cluster-wide user, port and identity fill gaps later
            return [dict(h) if isinstance(h, dict) else str(h) for h in items]
        except UsageError as exc:
            if name is None:
                raise
            raise UsageError(f"{name}: {exc.message}", exc.hint) from None

    def json_schema(self) -> dict[str, Any]:
        host = {"type": "object", "additionalProperties": False, "required": ["host"], "properties": {
            "host": {"type": "string"}, "user": {"type": "string"}, "port": {"type": ["integer", "string"]},
            "identity": {"type": "string"}, "work": {"type": "string"}, "scratch": {"type": "string"},
            "capabilities": {"anyOf": [{"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9_]+$"}},
                                       {"type": "string"}]},
            "role": {"enum": ["head", "worker", "dev"]}}}
        return {"description": self.help_text, "anyOf": [
            {"type": "array", "items": {"anyOf": [{"type": "string"}, host]}}, {"type": "string"}, {"type": "null"}]}


SETTINGS: tuple[Setting, ...] = (
    HostsSetting("static", "hosts", "An existing host: host, user@host:port or a JSON object with user, port, "
                 "identity, work, scratch, capabilities, role; repeatable.", kind="list", metavar="HOST"),
    Setting("static", "user", "Login user of hosts that name none.", metavar="USER", default="root"),
    Setting("static", "port", "SSH port of hosts that name none.", kind="int", metavar="PORT", default=22),
    Setting("static", "identity", "Private key vca first logs in with (then with the cluster's own key). "
            "Default: your ssh keys and agent.", metavar="FILE"),
    Setting("static", "rescan", "Accept host keys that changed since vca pinned them (a reinstalled host).",
            kind="bool", default=False, stored=False),
)


def _defaults(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: settings.get(k) for k in ("user", "port", "identity")}


def merge_hosts(stored: dict[str, Any], overrides: dict[str, Any]) -> list[HostSpec]:
    """The hosts a cluster has after adding ``overrides['hosts']`` to the stored ones: the stored first;
    a host given again with the same settings is no change, with other settings refused."""
    defaults = {**_defaults(stored), **{k: v for k, v in _defaults(overrides).items() if v is not None}}
    have = [HostSpec.from_json(h) for h in stored.get("hosts", [])]
    given = parse_hosts(_raw(overrides.get("hosts")), defaults)
    by_key = {h.key: h for h in have}
    out = list(have)
    for h in given:
        old = by_key.get(h.key)
        if old is None:
            out.append(h)
        elif old != h:
            raise UsageError(f"static host {h.host}:{h.port} is in the cluster already, with other settings",
                             "`vca teardown` releases the hosts; create the cluster again with the new settings")
    parse_hosts([h.to_json() for h in out])  # one head at most, in all
    return out


def _raw(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str | dict) else list(value)


class StaticProvider:
    name = "static"
    settings: ClassVar[tuple[Setting, ...]] = SETTINGS

    def __init__(self) -> None:
        self.rescan = False

    def check(self) -> None:
        pass

    # -- settings --------------------------------------------------------------------------
    def prepare(self, stored: dict[str, Any], overrides: dict[str, Any], creating: bool) -> dict[str, Any]:
        overrides = dict(overrides)
        self.rescan = bool(overrides.pop("rescan", False))
        overrides.pop("role", None)
        hosts = merge_hosts(stored, overrides)
        if not hosts:
            raise UsageError("a static cluster needs hosts", HINT)
        for h in hosts:
            if h.identity and not Path(h.identity).expanduser().is_file():
                raise UsageError(f"identity file {h.identity} of static host {h.label} does not exist")
        out = {k: v for k, v in {**_defaults(stored), **overrides}.items() if v is not None and k != "hosts"}
        return {**out, "hosts": [h.to_json() for h in hosts]}

    # -- nodes -----------------------------------------------------------------------------
    def _adopted(self, state: ClusterState) -> list[dict[str, Any]]:
        path = state.dir / NODES_FILE
        if not path.exists():
            return []
        rows: list[dict[str, Any]] = json.loads(path.read_text())["nodes"]
        return rows

    def _save(self, state: ClusterState, rows: list[dict[str, Any]]) -> None:
        atomic_write(state.dir / NODES_FILE, json.dumps({"nodes": sorted(rows, key=lambda r: r["index"])},
                                                         indent=2) + "\n")

    def nodes(self, state: ClusterState) -> list[Node]:
        return [self._node(state, r) for r in sorted(self._adopted(state), key=lambda r: r["index"])]

    @staticmethod
    def _node(state: ClusterState, row: dict[str, Any]) -> Node:
        spec = HostSpec.from_json(row["spec"])
        return Node(index=row["index"], name=f"{state.name}-{row['index']}", address=spec.host,
                    private_ip=spec.host, port=spec.port, user=spec.user, role=row["role"],
                    host_key=row["host_key"], capabilities=spec.capabilities,
                    details={"host": spec.label, **({"work": spec.work} if spec.work else {}),
                             **({"scratch": spec.scratch} if spec.scratch else {})})

    def create(self, state: ClusterState, count: int, say: Say, role: str | None = None) -> list[Node]:
        """Adopt the stored hosts that are not nodes yet (``count`` of them): keys learnt and pinned, the
        cluster's key authorized; all of them or none (what was done on some is undone)."""
        rows = self._adopted(state)
        taken = {(r["spec"]["host"].lower(), r["spec"].get("port", 22)) for r in rows}
        wanted = [HostSpec.from_json(h) for h in state.load().settings.get("hosts", [])]
        todo = [h for h in wanted if h.key not in taken]
        if count > len(todo):
            raise UsageError("provider static makes no machines: its nodes are the hosts it was given", HINT)
        todo = todo[:count]
        if not todo:
            return []
        keys = contact.learn_keys(todo, self.rescan, state.home)
        say(f"host keys of {len(todo)} static host{'s' if len(todo) != 1 else ''} pinned: "
            + ", ".join(h.label for h in todo))
        public = state.public_key()
        pairs = [(h, keys[h.key]) for h in todo]
        errors = parallel(lambda p: contact.run_on(p[0], p[1], contact.authorize_script(p[0], public),
                                                           p[0].identity), pairs)
        failed = {h.label: why for (h, _), why in zip(pairs, errors, strict=True) if why}
        if failed:
            done = [(h, k) for (h, k), why in zip(pairs, errors, strict=True) if not why]
            contact.cleanup(state, done)  # nothing half-installed
            raise RemoteFailed.naming("logging in to static hosts", failed, len(todo),
                                      "check the user and identity file (--user, --identity, per host); "
                                      "nothing was left on any host", noun="hosts")
        heads = any(r["role"] == "head" for r in rows)
        start = max((r["index"] for r in rows), default=-1) + 1
        new_rows = []
        for i, (h, key) in enumerate(pairs):
            index = start + i
            node_role = h.role or role or ("worker" if heads else role_for(index))
            heads = heads or node_role == "head"
            new_rows.append({"index": index, "spec": h.to_json(), "role": node_role, "host_key": key})
        self._save(state, rows + new_rows)
        return [self._node(state, r) for r in new_rows]

    def destroy(self, state: ClusterState, indexes: list[int] | None, say: Say) -> list[Node]:
        """Release hosts: stop vca's jobs and remove everything vca put on them; never powers anything
        off. Hosts that cannot be cleaned stay nodes (a second teardown tries again)."""
        rows = self._adopted(state)
        victims = [r for r in rows if indexes is None or r["index"] in indexes]
        if not victims:
            return []
        specs = [(HostSpec.from_json(r["spec"]), r["host_key"]) for r in victims]
        outcome = contact.cleanup(state, specs)
        gone = [r for r, (s, _) in zip(victims, specs, strict=True) if outcome[s.key] is None]
        for (s, _), r in zip(specs, victims, strict=True):
            if outcome[s.key] is not None:
                say(f"{state.name}-{r['index']} ({s.label}): cleaning failed: {outcome[s.key]}")
        gone_idx = {r["index"] for r in gone}
        self._save(state, [r for r in rows if r["index"] not in gone_idx])
        if state.exists():  # the hosts released are no longer asked for
            record = state.load()
            released = {HostSpec.from_json(r["spec"]).key for r in gone}
            kept = [h for h in record.settings.get("hosts", []) if HostSpec.from_json(h).key not in released]
            state.save(replace(record, settings={**record.settings, "hosts": kept}))
        if gone:
            say(f"released {len(gone)} static host{'s' if len(gone) != 1 else ''} (cleaned, still running)")
        if len(gone) < len(victims) and indexes is not None:
            raise ProviderError(f"{len(victims) - len(gone)} static host(s) could not be cleaned",
                                "once they answer, run the command again")
        return [self._node(state, r) for r in gone]

    def inventory_source(self, state: ClusterState) -> Path | None:
        return None
