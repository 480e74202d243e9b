"""The lab's public face: create, list and destroy the nodes of a cluster."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import LabError
from . import aptproxy, netns, node
from .config import LabConfig
from .hostinfo import raise_kernel_limits, require_root, require_tools
from .image import ImageRecipe, ensure_image
from .registry import LabNode, Registry, drop, nodes_in, put

Say = Callable[[str], None]


class Lab:
    def __init__(self, config: LabConfig | None = None) -> None:
        self.config = config or LabConfig.from_env()
        self.registry = Registry(self.config.root)

    def check_host(self) -> None:
        require_root()
        require_tools()

    def nodes(self, cluster: str) -> list[LabNode]:
        found = self.registry.nodes(cluster)
        settled = [n for n in found if not n.stopped and node.powered_itself_off(n)]
        if settled:  # guests that powered themselves off: release what they held, as `vca power off` does
            for n in settled:
                node.power_off(n)
            with self.registry.locked() as data:
                for n in settled:
                    n.stopped = True
                    put(data, n)
            found = self.registry.nodes(cluster)
        return found

    def is_running(self, n: LabNode) -> bool:
        """Supervised and running: its supervisor and systemd-nspawn are alive."""
        return node.is_running(n)

    def guest_running(self, n: LabNode) -> bool:
        """The guest runs, supervised or not (its systemd-nspawn may have been killed)."""
        return node.guest_running(n)

    def create(self, cluster: str, count: int, authorized_key: str, owner: str,
               say: Say = lambda _m: None, role_of: Callable[[int], str] | None = None,
               indexes: list[int] | None = None) -> list[tuple[LabNode, str]]:
        """Boot ``count`` new nodes with the next free indexes (``indexes``: with these, free ones: a
        healed node takes its index back); returns (node, SSH host key) pairs.

        Either all of them come up or none is left behind. ``role_of`` gives the role (head, worker,
        dev) the registry keeps for a new node's index.
        """
        self.check_host()
        raise_kernel_limits(say)
        rootfs = ensure_image(self.config.image_dir, ImageRecipe.for_host(), say)
        cfg = self.config
        results: list[tuple[LabNode, str]] = []
        errors: list[BaseException] = []

        def boot(n: LabNode) -> None:
            key = node.create(n, rootfs, cfg.bridge, cfg.subnet.prefixlen, cfg.gateway,
                              authorized_key, cfg.apt_proxy)
            results.append((n, key))

        new: list[LabNode] = []
        try:
            with self.registry.locked() as data:
                self._check_owner(nodes_in(data, cluster), cluster, owner)
                new = self._allocate(data, cluster, count, owner, role_of, indexes)
                for n in new:
                    put(data, n)
                netns.claim_bridge(cfg.bridge, cfg.root)
                netns.ensure_bridge(cfg.bridge, cfg.gateway, cfg.subnet.prefixlen)
                aptproxy.ensure(cfg.root, cfg.gateway, cfg.apt_proxy_port)
            say(f"booting {count} lab node{'s' if count != 1 else ''}")
            with ThreadPoolExecutor(max_workers=min(8, count)) as pool:
                for fut in [pool.submit(boot, n) for n in new]:
                    if (exc := fut.exception()) is not None:
                        errors.append(exc)
        except KeyboardInterrupt:  # the boots under way have ended: none of this run's nodes stays
            self._remove(new)
            raise
        if errors:
            self._remove(new)
            raise errors[0]
        return sorted(results, key=lambda r: r[0].index)

    def destroy(self, cluster: str, owner: str, indexes: list[int] | None = None) -> list[LabNode]:
        """Stop and remove the cluster's nodes (all, or those indexes). Idempotent."""
        require_root()
        with self.registry.locked() as data:
            mine = nodes_in(data, cluster)
            self._check_owner(mine, cluster, owner)
        victims = [n for n in mine if indexes is None or n.index in indexes]
        self._remove(victims)
        return victims

    def add_disk(self, cluster: str, index: int, size_mb: int) -> str:
        """A new empty disk for a running node (a loop device on a sparse file); returns the device."""
        require_root()
        victim = next((n for n in self.nodes(cluster) if n.index == index), None)
        if victim is None:
            raise LabError(f"lab cluster '{cluster}' has no node {index}")
        return node.add_disk(victim, size_mb)

    def power_off(self, cluster: str, owner: str, indexes: list[int] | None = None) -> list[LabNode]:
        """Power the running nodes among those indexes (all when None) off, keeping their disks."""
        require_root()
        with self.registry.locked() as data:
            self._check_owner(nodes_in(data, cluster), cluster, owner)
            victims = [n for n in nodes_in(data, cluster)
                       if not n.stopped and (indexes is None or n.index in indexes)]
        if victims:
            node.stop(victims)
            with ThreadPoolExecutor(max_workers=min(8, len(victims))) as pool:
                list(pool.map(node.power_off, victims))
        with self.registry.locked() as data:
            for n in victims:
                n.stopped = True
                put(data, n)
        return victims

    def power_on(self, cluster: str, owner: str, indexes: list[int] | None = None,
                 say: Say = lambda _m: None) -> list[tuple[LabNode, str]]:
        """Boot the powered-off nodes among those indexes (all when None) again on their disks, same
        address and host key; returns (node, host key) pairs."""
        self.check_host()
        cfg = self.config
        rootfs = ensure_image(cfg.image_dir, ImageRecipe.for_host(), say)
        with self.registry.locked() as data:
            self._check_owner(nodes_in(data, cluster), cluster, owner)
            targets = [n for n in nodes_in(data, cluster) if n.stopped and (indexes is None or n.index in indexes)]
            if targets:
                netns.claim_bridge(cfg.bridge, cfg.root)
                netns.ensure_bridge(cfg.bridge, cfg.gateway, cfg.subnet.prefixlen)
                aptproxy.ensure(cfg.root, cfg.gateway, cfg.apt_proxy_port)
        results: list[tuple[LabNode, str]] = []
        errors: list[BaseException] = []

        def boot(n: LabNode) -> None:
            try:
                results.append((n, node.power_on(n, rootfs, cfg.bridge, cfg.subnet.prefixlen, cfg.gateway)))
            except Exception as exc:
                errors.append(exc)

        if targets:
            with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
                list(pool.map(boot, targets))
        with self.registry.locked() as data:
            for n, _ in results:
                n.stopped = False
                put(data, n)
        if errors:
            raise errors[0]
        return sorted(results, key=lambda r: r[0].index)

    def _remove(self, victims: list[LabNode]) -> None:
        if victims:
            node.stop(victims)
            with ThreadPoolExecutor(max_workers=min(8, len(victims))) as pool:
                list(pool.map(node.cleanup, victims))
        with self.registry.locked() as data:
            for n in victims:
                drop(data, n)
            if not data["nodes"]:  # the last cluster is gone: so is the shared plumbing
                aptproxy.stop(self.config.root)
                netns.remove_bridge(self.config.bridge)
                netns.release_bridge(self.config.bridge, self.config.root)

    @staticmethod
    def _check_owner(existing: list[LabNode], cluster: str, owner: str) -> None:
        others = {n.owner for n in existing if n.owner != owner}
        if others:
            raise LabError(
                f"lab cluster '{cluster}' belongs to another vca home ({others.pop()})",
                "pick another cluster name, or use VCA_HOME of its owner",
            )

    def _allocate(self, data: dict[str, Any], cluster: str, count: int, owner: str,
                  role_of: Callable[[int], str] | None = None, indexes: list[int] | None = None
                  ) -> list[LabNode]:
        cfg = self.config
        existing = nodes_in(data)
        used = {n.ip for n in existing} | {cfg.gateway}
        free = (str(a) for a in cfg.subnet.hosts() if str(a) not in used)
        mine = [n.index for n in existing if n.cluster == cluster]
        taken = sorted(set(indexes or []) & set(mine))
        if taken:
            raise LabError(f"lab cluster '{cluster}' still has node {', '.join(map(str, taken))}")
        start = max(mine, default=-1) + 1
        out = []
        for index in (indexes if indexes is not None else range(start, start + count)):
            address = next(free, None)
            if address is None:
                raise LabError(
                    f"the lab network {cfg.subnet} has no free address for {count} more nodes",
                    "tear down other lab clusters or set VCA_LAB_SUBNET to a larger network",
                )
            name = f"{cluster}-{index}"
            tag = hashlib.sha1(f"{cluster}/{index}".encode()).hexdigest()[:10]
            out.append(LabNode(
                cluster=cluster, index=index, name=name, ip=address, netns=f"vca-{name}",
                veth=f"vh{tag}", dir=str(cfg.root / "nodes" / name), owner=owner, created=time.time(),
                role=role_of(index) if role_of else "",
            ))
        return out

