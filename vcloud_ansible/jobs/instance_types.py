"""Instance types vca knows without asking a cloud: the check the local lab applies to a job CSV's
``instance_type`` column (the lab records the type, it cannot give a node that many CPUs). The ec2
provider asks EC2 itself (DescribeInstanceTypes), which knows every type of its region."""

from __future__ import annotations

import re

# EC2 families in current and recent use (general purpose, compute, memory, storage, accelerated).
FAMILIES = frozenset((
    "a1", "c1", "c3", "c4", "c5", "c5a", "c5ad", "c5d", "c5n", "c6a", "c6g", "c6gd", "c6gn", "c6i", "c6id",
    "c6in", "c7a", "c7g", "c7gd", "c7gn", "c7i", "c8g", "d2", "d3", "d3en", "dl1", "f1", "g3", "g4ad", "g4dn",
    "g5", "g5g", "g6", "g6e", "gr6", "h1", "hpc6a", "hpc7g", "i2", "i3", "i3en", "i4g", "i4i", "im4gn",
    "inf1", "inf2", "is4gen", "m1", "m2", "m3", "m4", "m5", "m5a", "m5ad", "m5d", "m5dn", "m5n", "m5zn",
    "m6a", "m6g", "m6gd", "m6i", "m6id", "m6idn", "m6in", "m7a", "m7g", "m7gd", "m7i", "m7i-flex", "m8g",
    "p2", "p3", "p3dn", "p4d", "p4de", "p5", "r3", "r4", "r5", "r5a", "r5ad", "r5b", "r5d", "r5dn", "r5n",
    "r6a", "r6g", "r6gd", "r6i", "r6id", "r6idn", "r6in", "r7a", "r7g", "r7gd", "r7i", "r7iz", "r8g", "t1",
    "t2", "t3", "t3a", "t4g", "trn1", "trn1n", "u-3tb1", "u-6tb1", "vt1", "x1", "x1e", "x2gd", "x2idn",
    "x2iedn", "x2iezn", "z1d",
))
_SIZE = re.compile(r"^(nano|micro|small|medium|large|metal|xlarge|\d{1,2}xlarge|metal-\d{2}xl)$")


def known(instance_type: str) -> bool:
    """``family.size`` with a family and a size vca knows (``t3.micro``, ``c5.18xlarge``)."""
    family, dot, size = instance_type.partition(".")
    return bool(dot) and family in FAMILIES and bool(_SIZE.match(size))
