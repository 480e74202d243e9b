"""One exception hierarchy; the CLI renders any VcaError as one line and a non-zero exit code."""

from __future__ import annotations


class VcaError(Exception):
    """An error the user can act on. ``hint`` says what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class UsageError(VcaError):
    """Bad input: a count, a name, an index, a path."""

    exit_code = 2


class ClusterNotFound(UsageError):
    pass


class NodeNotFound(UsageError):
    pass


class EnvironmentProblem(VcaError):
    """The machine cannot do what was asked: not root, a system tool missing."""

    exit_code = 3


class LabError(VcaError):
    """The local node lab failed to create, start or remove something."""


class ProviderError(VcaError):
    """A provider (lab, EC2, static hosts) failed."""


class RemoteFailed(VcaError):
    """A command or playbook failed on some nodes; ``hosts`` names them."""

    NAMED = 5  # nodes described in the message; the rest are counted

    @classmethod
    def naming(cls, what: str, failed: dict[str, str], total: int, hint: str | None = None,
               noun: str = "nodes") -> RemoteFailed:
        """'<what> failed on 2 of 16 nodes: n-3 (why), n-7 (why)' from {node: why} in order."""
        named = [f"{h} ({why})" for h, why in list(failed.items())[:cls.NAMED]]
        if len(failed) > cls.NAMED:
            named.append(f"and {len(failed) - cls.NAMED} more")
        return cls(f"{what} failed on {len(failed)} of {total} {noun}: {', '.join(named)}", list(failed), hint)

    def __init__(self, message: str, hosts: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.hosts = hosts
