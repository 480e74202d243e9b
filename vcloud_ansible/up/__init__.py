"""`vca up` / `vca down`: a cluster converged on its spec file (plan.py: what to do; run.py: doing it;
services.py: the services step against the cluster's services API)."""

from .plan import Plan, Step, make_plan
from .run import UpReport, down, up

__all__ = ["Plan", "Step", "UpReport", "down", "make_plan", "up"]
