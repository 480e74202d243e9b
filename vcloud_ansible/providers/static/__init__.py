"""Provider ``static``: clusters of hosts that exist already (see provider.py)."""

from .hosts import HostSpec, parse_host, parse_hosts
from .provider import StaticProvider, merge_hosts

__all__ = ["HostSpec", "StaticProvider", "merge_hosts", "parse_host", "parse_hosts"]
