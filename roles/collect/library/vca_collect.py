#!/usr/bin/python
"""Documentation of the vca_collect action (the work is done by action_plugins/vca_collect.py)."""

DOCUMENTATION = r"""
module: vca_collect
short_description: Fetch result files from a node into a local folder, verified, with a manifest
description:
  - Resolves I(remote) on the node (relative to the release of the node's last job, else
    ~/vca/current, unless absolute or ~/...; globs are
    expanded by the node's shell; folders are taken recursively), lists the files with their sha256
    and sends them as one compressed tarball over the already open connection. Runs no Python on the node.
  - Files land in I(dest)/<cluster>-<index>/, or with I(suffix) in I(dest).<index>; local paths are
    relative to the part of I(remote) before its first glob (a folder keeps its own name unless
    I(remote) ends in /).
  - Every file is checked against the node's sha256 before it is moved into place. A local file with
    other content is kept and the node fails, unless I(overwrite). Remote names can never write outside
    the node's folder, nothing is written through a link below I(dest); links pointing outside the
    collected tree (glob matches included) are skipped.
  - Each node records its files (node index, hostnames, instance id, remote path, size, sha256, time)
    in the manifest dest/vca-manifest.json (with suffix dest.manifest.json), and nodes that failed in
    its failed_nodes.
options:
  remote: {description: File, folder or glob on the node., type: str, required: true}
  dest: {description: Local folder (with suffix the name prefix)., type: path, default: "."}
  suffix: {description: "Old flat form: dest.<index> instead of dest/<cluster>-<index>.", type: bool, default: false}
  overwrite: {description: Replace local files that have other content., type: bool, default: false}
  compression:
    description: "auto (zstd when both ends have it, else gzip), zstd, gz or none."
    type: str
    default: auto
    choices: [auto, zstd, gz, none]
  retry_failed:
    description: Only the nodes that the manifest lists as failed; the others are skipped.
    type: bool
    default: false
author: vca developers
"""

RETURN = r"""
files: {description: Files of the node now held locally., type: int, returned: always}
new: {description: Files placed that were not there., type: int, returned: always}
same: {description: Files sent that were already there with the same content., type: int, returned: always}
kept: {description: Files not sent at all (held unchanged from an earlier run)., type: int, returned: always}
bytes: {description: Bytes written locally., type: int, returned: always}
errors: {description: Problems (conflicts, refused names, checksum mismatches)., type: list, returned: always}
release: {description: The release the files came from (none for paths outside ~/vca/releases)., type: str, returned: always}
"""
