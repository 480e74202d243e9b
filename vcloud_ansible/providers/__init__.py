"""Providers by name: the registry everything else looks a provider up in. Each provider implements
the Provider protocol of providers.base, including the settings it declares (providers.settings).

Registering a provider here is all it takes to give it its `vca provision --provider` choice, its flags
and environment variables, and its section of the spec file.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from ..errors import UsageError
from ..node import Node
from .base import Provider
from .settings import Setting, check_known

# name -> the provider's class, or "module:Class" imported on first use: a command that touches one
# provider does not pay for importing the others.
REGISTRY: dict[str, str | type[Provider]] = {
    "local": f"{__name__}.local:LocalProvider",
    "ec2": f"{__name__}.ec2.provider:Ec2Provider",
    "static": f"{__name__}.static.provider:StaticProvider",
}
PROVIDERS = tuple(REGISTRY)

__all__ = ["PROVIDERS", "REGISTRY", "Node", "Provider", "check_settings", "declared_settings", "get_provider",
           "provider_class"]


def provider_class(name: str) -> type[Provider]:
    entry = REGISTRY.get(name)
    if entry is None:
        raise UsageError(f"unknown provider '{name}'", f"choose one of: {', '.join(REGISTRY)}")
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        cls: type[Provider] = getattr(importlib.import_module(module), attr)
        return cls
    return entry


def get_provider(name: str) -> Provider:
    return provider_class(name)()


def declared_settings() -> tuple[Setting, ...]:
    """The settings of every registered provider, in registry order, each in its declared order."""
    return tuple(s for name in REGISTRY for s in provider_class(name).settings)


def check_settings(name: str, given: Iterable[str]) -> None:
    """Refuse settings provider ``name`` does not declare (flags meant for another provider, a typo
    in a spec file or an API call), naming the provider they belong to."""
    given = set(given)
    declared = provider_class(name).settings
    if declared:
        check_known(name, declared, given)
        return
    if given:
        elsewhere = {s.key: s for s in declared_settings()}
        flags = ", ".join(elsewhere[k].flag if k in elsewhere else "--" + k.replace("_", "-") for k in sorted(given))
        owners = sorted({s.provider for s in declared_settings() if s.key in given})
        raise UsageError(f"provider '{name}' takes no settings ({flags})",
                         f"those options apply to provider{'s' if len(owners) > 1 else ''} {', '.join(owners)}"
                         if owners else None)
