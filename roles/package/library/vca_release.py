#!/usr/bin/python
"""Documentation of the vca_release action (the work is done by action_plugins/vca_release.py)."""

DOCUMENTATION = r"""
module: vca_release
short_description: Install a packed release on a node, write the node contract and start the job
description:
  - Sends the tarball over the existing connection only when the node lacks that release, unpacks it
    into ~/vca/releases/<id>, switches ~/vca/current atomically, writes /etc/vca/cluster.json and the
    /etc/hosts block, and starts the launch script detached (systemd-run where systemd runs, else
    setsid; tmux on request) with the VCA_* environment.
  - A job already running is left alone unless restart is true.
  - Runs no Python on the node.
options:
  path: {description: Local tarball (from vca_pack)., type: path, required: true}
  release_id: {description: Release id (from vca_pack)., type: str, required: true}
  compression: {description: "How to unpack: gz, bz2, xz or empty.", type: str, default: gz}
  nodes:
    description: Every node of the cluster (index, name, private_ip, public_address, role), from vca_pack.
    type: list
    elements: dict
    required: true
  url:
    description: Presigned URL the node downloads the release from (instead of receiving it over SSH).
    type: str
    default: ""
  env: {description: Extra environment variables of the job., type: dict, default: {}}
  procs: {description: "Processes per node, or auto (one per core).", type: str, default: "1"}
  mem_kb: {description: Address-space limit per process in KiB (0 = none)., type: int, default: 0}
  tmux: {description: Run each process in a tmux session vca-<proc>., type: bool, default: false}
  restart: {description: Stop a running job first (SIGTERM, SIGKILL after grace)., type: bool, default: false}
  grace: {description: Seconds between SIGTERM and SIGKILL., type: int, default: 10}
  bootstrap_python:
    description: Install python3 (apt-get, dnf or apk) on a node that lacks it, so later roles can run modules.
    type: bool
    default: true
author: vca developers
"""

RETURN = r"""
sent: {description: Whether the tarball was transferred., type: bool, returned: always}
job: {description: "started, busy (another job runs) or unchanged.", type: str, returned: always}
"""
