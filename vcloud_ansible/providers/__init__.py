"""Providers by name. Each module implements the Provider protocol of providers.base."""

from __future__ import annotations

from ..errors import UsageError
from ..node import Node
from .base import Provider

PROVIDERS = ("local", "ec2")

__all__ = ["PROVIDERS", "Node", "Provider", "get_provider"]


def get_provider(name: str) -> Provider:
    if name == "local":
        from .local import LocalProvider

        return LocalProvider()
    if name == "ec2":
        from .ec2.provider import Ec2Provider

        return Ec2Provider()
    raise UsageError(f"unknown provider '{name}'", f"choose one of: {', '.join(PROVIDERS)}")
