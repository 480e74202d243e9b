"""A job's state, derived from what S3 holds for it and whether its node still lives. Pure: the same
answer on any machine that reads the same bucket and provider listing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from .spec import JobRow
from .store import JobObjects

STATES = ("pending", "setting up", "running", "uploading", "done", "failed", "lost")
FINAL = ("done", "failed")


@dataclass
class JobStatus:
    name: str
    index: int
    state: str  # one of STATES
    attempt: int = 0  # of the newest launch (0: never launched)
    node: str | None = None  # the node of the newest launch
    exit_code: int | None = None
    started_at: float | None = None  # the command's, from result.json
    ended_at: float | None = None

    @property
    def label(self) -> str:
        return f"{self.state}({self.exit_code})" if self.state in FINAL else self.state

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "index": self.index, "state": self.state, "label": self.label,
                "attempt": self.attempt, "node": self.node, "exit_code": self.exit_code,
                "started_at": self.started_at, "ended_at": self.ended_at}


def job_status(row: JobRow, objects: JobObjects, alive: set[str]) -> JobStatus:
    """``alive``: names of the array's nodes the provider lists as running (or starting)."""
    st = JobStatus(row.name, row.index, "pending")
    if not objects.launches:
        return st
    st.attempt = max(objects.launches)
    st.node = objects.launches[st.attempt].get("node")
    res, man = objects.result, objects.manifest
    if res and man and res.get("attempt") == st.attempt and man.get("attempt") == st.attempt:
        st.exit_code = int(res.get("exit_code", -1))
        st.state = "done" if st.exit_code == 0 else "failed"
        st.started_at, st.ended_at = res.get("started_at"), res.get("ended_at")
        return st
    if st.node not in alive:
        st.state = "lost"
        return st
    reported = objects.state if objects.state and objects.state.get("attempt") == st.attempt else None
    name = str(reported.get("state")) if reported else "setting up"
    st.state = name if name in ("setting up", "running") else "uploading"
    return st


def counts(jobs: list[JobStatus]) -> dict[str, int]:
    """Jobs per label: {"done(0)": 4, "failed(3)": 1, ...}."""
    return dict(Counter(j.label for j in jobs))
