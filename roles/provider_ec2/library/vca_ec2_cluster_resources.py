#!/usr/bin/python
# ruff: noqa: E402  # Ansible modules carry their documentation before the imports
"""Delete (or list) the EC2 resources that carry a vca cluster's tag, other than its instances."""

from __future__ import annotations

import contextlib

DOCUMENTATION = r"""
module: vca_ec2_cluster_resources
short_description: Delete or list what vca made in EC2 for a cluster
description:
  - Works on resources tagged C(vca:cluster=<cluster>) only, found by that tag; nothing without the
    tag is ever touched.
  - With O(state=absent), deletes the cluster's security groups, key pairs, launch templates and
    detached volumes (retrying while a group is still held by instances that are going away).
  - Then lists what still carries the tag and exists (live instances, security groups, key pairs,
    launch templates, volumes) as RV(leftovers); with O(state=query) it only lists.
  - Run it after the instances are terminated (M(vca_ec2_instances) with O(state=absent)).
options:
  cluster:
    description: Value of the C(vca:cluster) tag.
    type: str
    required: true
  state:
    description: V(absent) deletes, then lists; V(query) only lists.
    type: str
    choices: [absent, query]
    default: absent
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Delete the security group, key pair and launch template of cluster demo
  vca_ec2_cluster_resources:
    cluster: demo
  register: cleanup

- name: Check that nothing is left
  ansible.builtin.assert:
    that: cleanup.leftovers | length == 0
"""

RETURN = r"""
deleted:
  description: What was deleted, one C(<type> <id>) line each.
  returned: always
  type: list
  elements: str
leftovers:
  description: What still exists with the tag, one C(<type> <id>) line each.
  returned: always
  type: list
  elements: str
"""

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore itself
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def tagged(cluster):
    return [{"Name": "tag:vca:cluster", "Values": [cluster]}]


def paged(client, operation, key, **kwargs):
    out = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        out.extend(page.get(key, []))
    return out


def delete_all(module, client, cluster):
    """Delete the tagged resources; returns the lines of what went."""
    deleted = []
    plan = [
        ([g["GroupId"] for g in client.describe_security_groups(aws_retry=True, Filters=tagged(cluster))
          ["SecurityGroups"]], "security-group", lambda i: client.delete_security_group(aws_retry=True, GroupId=i)),
        ([k["KeyName"] for k in client.describe_key_pairs(aws_retry=True, Filters=tagged(cluster))["KeyPairs"]],
         "key-pair", lambda i: client.delete_key_pair(aws_retry=True, KeyName=i)),
        ([t["LaunchTemplateId"] for t in paged(client, "describe_launch_templates", "LaunchTemplates",
                                                Filters=tagged(cluster))],
         "launch-template", lambda i: client.delete_launch_template(aws_retry=True, LaunchTemplateId=i)),
        ([v["VolumeId"] for v in paged(client, "describe_volumes", "Volumes",
                                       Filters=[*tagged(cluster), {"Name": "status", "Values": ["available"]}])],
         "volume", lambda i: client.delete_volume(aws_retry=True, VolumeId=i)),
    ]
    for ids, kind, delete in plan:
        for rid in ids:
            if not module.check_mode:
                try:
                    delete(rid)
                except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                    module.fail_json_aws(e, msg=f"deleting {kind} {rid} of cluster {cluster} failed")
            deleted.append(f"{kind} {rid}")
    return deleted


def leftovers(client, cluster):
    """What exists with the tag, asked per kind of resource vca makes (DescribeTags can list tags of
    resources that are gone: terminated instances for an hour, and more on some EC2 look-alikes)."""
    left = []
    for res in paged(client, "describe_instances", "Reservations",
                     Filters=[*tagged(cluster), {"Name": "instance-state-name", "Values": LIVE_STATES}]):
        left += [f"instance {i['InstanceId']} ({i['State']['Name']})" for i in res["Instances"]]
    left += [f"security-group {g['GroupId']}" for g in
             client.describe_security_groups(aws_retry=True, Filters=tagged(cluster))["SecurityGroups"]]
    left += [f"key-pair {k['KeyName']}" for k in
             client.describe_key_pairs(aws_retry=True, Filters=tagged(cluster))["KeyPairs"]]
    left += [f"launch-template {t['LaunchTemplateId']}" for t in
             paged(client, "describe_launch_templates", "LaunchTemplates", Filters=tagged(cluster))]
    left += [f"volume {v['VolumeId']} ({v['State']})" for v in
             paged(client, "describe_volumes", "Volumes", Filters=tagged(cluster))]
    return left


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(cluster=dict(type="str", required=True),
                           state=dict(type="str", choices=["absent", "query"], default="absent")),
        supports_check_mode=True,
    )
    # A group stays "in use" for a little while after its instances terminated.
    retry = AWSRetry.jittered_backoff(retries=10, delay=2, max_delay=30,
                                      catch_extra_error_codes=["DependencyViolation"])
    client = module.client("ec2", retry_decorator=retry)
    cluster = module.params["cluster"]
    deleted = []
    try:
        if module.params["state"] == "absent":
            deleted = delete_all(module, client, cluster)
        left = [] if module.check_mode else leftovers(client, cluster)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"listing the resources of cluster {cluster} failed")
    module.exit_json(changed=bool(deleted), deleted=deleted, leftovers=left)


if __name__ == "__main__":
    main()
