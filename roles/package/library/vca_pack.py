#!/usr/bin/python
"""Documentation of the vca_pack action (the work is done by action_plugins/vca_pack.py)."""

DOCUMENTATION = r"""
module: vca_pack
short_description: Validate a vca package and pack it once on the control machine
description:
  - Checks that the package (a folder or a .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz tarball) has an
    executable vcloud-launch or vca-launch at its root and nothing that could escape on unpacking.
  - A folder is packed into a reproducible tarball; its content hash is the release id.
  - Runs on the control machine only; it never connects to a node.
options:
  src:
    description: The package folder or tarball.
    type: path
    required: true
  cache_dir:
    description: Where packed releases are kept. Default the cluster's releases folder in VCA_HOME.
    type: path
  bucket:
    description:
      - S3 bucket to upload the release to once; nodes then download it through a presigned URL
        (no credentials on nodes). Credentials and endpoint come from the standard AWS chain.
    type: str
  prefix:
    description: Key prefix in the bucket (the cluster name by default in the package role).
    type: str
  env:
    description:
      - The job's extra environment, a mapping (or its JSON/YAML text) of names to text; only checked
        here (names the shell can export, not VCA_*, values text), never returned.
    type: raw
author: vca developers
"""

RETURN = r"""
release_id: {description: Content hash of the tarball (12 hex characters)., type: str, returned: always}
path: {description: The tarball to send., type: str, returned: always}
compression: {description: "gz, bz2, xz or empty.", type: str, returned: always}
nodes: {description: Every node of the cluster in index order, for the node contract., type: list, returned: always}
url: {description: Presigned download URL when a bucket is used, else empty., type: str, returned: always}
"""
