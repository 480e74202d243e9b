"""Refused inputs of `vca guard` and `vca gc`: checked before any cluster, node or cloud resource is
looked at, so nothing changes."""

from __future__ import annotations

from . import Case

CASES: list[Case] = [
    Case("guard-idle-stop-malformed", ("guard", "--idle-stop", "5x"), "invalid idle stop '5x'",
         doc="A duration with an unknown unit is refused naming the units (s, m, h, d) before any node is asked."),
    Case("guard-idle-stop-fraction", ("guard", "--idle-stop", "1.5h"), "invalid idle stop '1.5h'",
         doc="Durations are whole numbers of a unit (90m, not 1.5h)."),
    Case("guard-lifetime-negative", ("guard", "--lifetime", "-4h"), "negative lifetime '-4h'",
         doc="A negative lifetime is refused; `--lifetime 0` means never, `+4h` four hours from now."),
    Case("guard-lifetime-too-long", ("guard", "--lifetime", "+400d"), "is longer than a year",
         doc="A lifetime over a year is refused (a typo would keep machines for ever)."),
    Case("guard-idle-action-bad", ("guard", "--idle-action", "pause"), "invalid idle action 'pause'",
         doc="`--idle-action` takes stop or terminate only."),
    Case("gc-unknown-region", ("gc", "--region", "xx-nowhere-9"), "unknown AWS region 'xx-nowhere-9'",
         needs="aws", doc="`gc` in a region EC2 does not know is refused before anything is listed or removed."),
]
