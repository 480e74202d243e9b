"""vca: named clusters of machines that run your code, built on Ansible.

The whole Python API is ``from vcloud_ansible import Cluster``: every verb of the ``vca`` command is a
method of it, with typed results and the exceptions below (all are ``VcaError``; ``one_line()`` is
what the CLI prints). ``import vcloud_ansible`` stays cheap: the classes load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ClusterNotFound,
    EnvironmentProblem,
    LabError,
    NodeNotFound,
    ProviderError,
    RemoteFailed,
    UsageError,
    VcaError,
)

if TYPE_CHECKING:
    from .cluster import Cluster, NodeStatus, TeardownResult, WaitResult
    from .jobs.array import JobArray
    from .node import Node, NodeRefs
    from .playbook.runner import RunResult
    from .release.transport import InjectResult
    from .remote.ssh import ExecResult
    from .service.spec import ServiceInfo
    from .shape.remove import RemoveResult

__version__ = "0.1.0"

# name -> module that defines it, imported on first use
_LAZY = {
    "Cluster": "cluster", "NodeStatus": "cluster", "TeardownResult": "cluster", "WaitResult": "cluster",
    "Node": "node", "NodeRefs": "node", "RemoveResult": "shape.remove", "RunResult": "playbook.runner",
    "InjectResult": "release.transport",
    "ExecResult": "remote.ssh", "JobArray": "jobs.array", "ServiceInfo": "service.spec",
}

__all__ = [
    "Cluster",
    "ClusterNotFound",
    "EnvironmentProblem",
    "ExecResult",
    "InjectResult",
    "JobArray",
    "LabError",
    "Node",
    "NodeNotFound",
    "NodeRefs",
    "NodeStatus",
    "ProviderError",
    "RemoteFailed",
    "RemoveResult",
    "RunResult",
    "ServiceInfo",
    "TeardownResult",
    "UsageError",
    "VcaError",
    "WaitResult",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
