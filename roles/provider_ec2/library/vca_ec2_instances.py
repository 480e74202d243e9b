#!/usr/bin/python
# ruff: noqa: E402  # Ansible modules carry their documentation before the imports
"""Launch, index and terminate the instances of a vca cluster, with a bounded number of EC2 calls."""

from __future__ import annotations

import contextlib
import time

DOCUMENTATION = r"""
module: vca_ec2_instances
short_description: Launch, index and terminate the EC2 instances of a vca cluster
description:
  - The cluster is every instance tagged C(vca:cluster=<cluster>) in a live state (pending, running,
    stopping, stopped). Each node carries a distinct C(vca:index) tag.
  - With O(state=present), adds O(count) nodes (under the given O(indexes), else the lowest free
    ones not O(reserved)). Instances of the cluster that carry no index (a run
    interrupted between launch and tagging) are adopted first, so nothing is orphaned. The rest are
    launched in one RunInstances request from a launch template, with an idempotency token; each
    gets the lowest free index, its role and a Name tag (one CreateTags call each), then the module
    waits until all are running. Calls: about 3 + one per node.
  - With O(state=absent), terminates the cluster's instances (those with the given indexes, or all,
    including unindexed ones), at most 1000 per TerminateInstances call, and waits until they are gone.
    Instances without the cluster tag are never touched.
  - Unlike M(amazon.aws.ec2_instance) it does not compare each instance with the parameters; the
    launch template carries the configuration.
options:
  cluster:
    description: Value of the C(vca:cluster) tag.
    type: str
    required: true
  state:
    description: V(present) adds nodes, V(absent) terminates them.
    type: str
    choices: [present, absent]
    default: present
  count:
    description: Nodes to add (O(state=present)); adopted unindexed instances count towards it.
    type: int
    default: 0
  launch_template_id:
    description: Launch template for new instances. Required when instances must be launched.
    type: str
  launch_template_version:
    description: Version of the launch template.
    type: str
    default: $Default
  client_token:
    description:
      - Idempotency token of the RunInstances request (at most 64 characters). A retried request with
        the same token and count returns the instances launched the first time instead of new ones.
    type: str
  tags:
    description: Tags for new instances and their volumes, at launch (e.g. vca:cluster, vca:owner).
    type: dict
    default: {}
  role:
    description: Role tag (vca:role) of the new nodes. Default node 0 head, others worker.
    type: str
    choices: [head, worker, dev]
  spot:
    description: Launch the new instances as spot instances (InstanceMarketOptions of this request only).
    type: bool
    default: false
  spot_max_price:
    description: Highest hourly spot price in USD; empty for the on-demand price. Only with O(spot).
    type: str
    default: ""
  shutdown_behavior:
    description:
      - What a shutdown from inside a new instance (C(poweroff)) does to it (InstanceInitiatedShutdownBehavior
        of this request). Omitted: EC2's default, V(stop).
    type: str
    choices: [stop, terminate]
  indexes:
    description:
      - With O(state=absent), the indexes to terminate; empty means every instance of the cluster.
      - With O(state=present), the indexes the new nodes take (replacing nodes that are gone under their
        own indexes); O(count) must be their number and none may belong to a live node. Empty: the
        lowest free indexes.
    type: list
    elements: int
    default: []
  reserved:
    description:
      - With O(state=present) and no O(indexes), indexes new nodes never take (nodes that are gone,
        kept for their replacement).
    type: list
    elements: int
    default: []
  wait:
    description: Wait until new instances run, or terminated ones are gone.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Add 3 nodes to cluster demo
  vca_ec2_instances:
    cluster: demo
    count: 3
    launch_template_id: lt-0123456789abcdef0
    tags: {"vca:cluster": demo, "vca:owner": me@laptop}

- name: Terminate every instance of cluster demo
  vca_ec2_instances:
    cluster: demo
    state: absent
"""

RETURN = r"""
instances:
  description: The cluster's live instances after the change, by index.
  returned: always
  type: list
  elements: dict
launched_ids:
  description: Instances launched by this run.
  returned: always
  type: list
  elements: str
adopted_ids:
  description: Unindexed instances of the cluster that received an index in this run.
  returned: always
  type: list
  elements: str
terminated_ids:
  description: Instances terminated by this run.
  returned: always
  type: list
  elements: str
"""

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore itself
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

TAG_CLUSTER = "vca:cluster"
TAG_INDEX = "vca:index"
TAG_ROLE = "vca:role"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
TERMINATE_BATCH = 1000  # TerminateInstances accepts at most 1000 ids
POLL_SECONDS = 2


def describe(client, cluster):
    """Live instances of the cluster; one call per 1000."""
    filters = [{"Name": "tag:" + TAG_CLUSTER, "Values": [cluster]},
               {"Name": "instance-state-name", "Values": LIVE_STATES}]
    out = []
    token = None
    while True:
        kwargs = {"Filters": filters, "MaxResults": 1000}
        if token:
            kwargs["NextToken"] = token
        page = client.describe_instances(aws_retry=True, **kwargs)
        for res in page.get("Reservations", []):
            out.extend(res.get("Instances", []))
        token = page.get("NextToken")
        if not token:
            return out


def tags_of(inst):
    return {t["Key"]: t["Value"] for t in inst.get("Tags", [])}


def index_of(inst):
    raw = tags_of(inst).get(TAG_INDEX, "")
    return int(raw) if raw.isdigit() else None


def summary(inst):
    tags = tags_of(inst)
    return {
        "instance_id": inst["InstanceId"],
        "index": index_of(inst),
        "role": tags.get(TAG_ROLE),
        "state": inst.get("State", {}).get("Name"),
        "private_ip": inst.get("PrivateIpAddress"),
        "public_ip": inst.get("PublicIpAddress"),
        "instance_type": inst.get("InstanceType"),
        "zone": inst.get("Placement", {}).get("AvailabilityZone"),
    }


def free_indexes(used):
    """The lowest indexes not in ``used``, in order, forever."""
    i = 0
    while True:
        if i not in used:
            yield i
        i += 1


def tag_specifications(tags):
    pairs = [{"Key": k, "Value": str(v)} for k, v in sorted(tags.items())]
    return [{"ResourceType": kind, "Tags": pairs} for kind in ("instance", "volume")]


def wait_for(module, client, cluster, ids, done):
    """Poll the cluster (one call per round) until ``done(instances_by_id)``; fail on timeout."""
    deadline = time.monotonic() + module.params["wait_timeout"]
    while True:
        current = {i["InstanceId"]: i for i in describe(client, cluster)}
        verdict = done(current)
        if verdict is True:
            return current
        if time.monotonic() > deadline:
            module.fail_json(msg=f"timed out after {module.params['wait_timeout']}s waiting for {verdict}",
                             instance_ids=sorted(ids))
        time.sleep(POLL_SECONDS)


def ensure_present(module, client):
    p = module.params
    cluster = p["cluster"]
    live = describe(client, cluster)
    used = {index_of(i) for i in live if index_of(i) is not None}
    # Oldest first, so that indexes follow launch order.
    orphans = sorted((i for i in live if index_of(i) is None),
                     key=lambda i: (str(i.get("LaunchTime")), i.get("AmiLaunchIndex", 0), i["InstanceId"]))
    wanted = sorted(set(p["indexes"]))
    if wanted:  # these indexes exactly: orphans take some of them, the rest are launched
        taken = [i for i in wanted if i in used]
        if taken:
            module.fail_json(msg=f"index {taken[0]} belongs to a live node of cluster {cluster}")
        orphans = orphans[:len(wanted)]
    need = max(0, p["count"] - len(orphans))
    result = {"changed": bool(orphans) or need > 0, "launched_ids": [], "adopted_ids": [],
              "terminated_ids": []}
    if module.check_mode:
        result.update(would_launch=need, would_adopt=[i["InstanceId"] for i in orphans],
                      instances=[summary(i) for i in live])
        module.exit_json(**result)
    launched = []
    if need:
        if not p["launch_template_id"]:
            module.fail_json(msg="launch_template_id is required to launch instances")
        request = {
            "MinCount": need,
            "MaxCount": need,
            "LaunchTemplate": {"LaunchTemplateId": p["launch_template_id"],
                               "Version": p["launch_template_version"]},
            "TagSpecifications": tag_specifications(dict(p["tags"], **{TAG_CLUSTER: cluster})),
        }
        if p["client_token"]:
            request["ClientToken"] = p["client_token"]
        if p["spot"]:  # per request: the cluster's launch template stays on-demand
            market = {"MarketType": "spot"}
            if p["spot_max_price"]:
                market["SpotOptions"] = {"MaxPrice": p["spot_max_price"]}
            request["InstanceMarketOptions"] = market
        if p["shutdown_behavior"]:
            request["InstanceInitiatedShutdownBehavior"] = p["shutdown_behavior"]
        try:
            launched = client.run_instances(aws_retry=True, **request)["Instances"]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg=f"RunInstances failed for {need} instances")
    # With a reused token, RunInstances returns the instances of the first attempt: they may be
    # among the orphans, or already carry their index.
    seen = {i["InstanceId"] for i in live if index_of(i) is not None}
    todo = []
    for inst in orphans + launched:
        if inst["InstanceId"] not in seen:
            seen.add(inst["InstanceId"])
            todo.append(inst)
    indexes = iter(wanted) if wanted else free_indexes(used | set(p["reserved"]))
    for inst in todo:
        index = next(indexes)
        role = p["role"] or ("head" if index == 0 else "worker")
        tags = [{"Key": TAG_INDEX, "Value": str(index)}, {"Key": TAG_ROLE, "Value": role},
                {"Key": "Name", "Value": f"{cluster}-{index}"}]
        try:
            client.create_tags(aws_retry=True, Resources=[inst["InstanceId"]], Tags=tags)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg=f"tagging {inst['InstanceId']} as node {index} failed")
    result["launched_ids"] = [i["InstanceId"] for i in launched]
    result["adopted_ids"] = [i["InstanceId"] for i in orphans]
    ids = {i["InstanceId"] for i in todo}
    current = None
    if ids and p["wait"]:
        def running(by_id):
            gone = sorted(ids - set(by_id))
            if gone:
                module.fail_json(msg=f"instances ended before running (capacity, spot or quota?): {', '.join(gone)}",
                                 instance_ids=sorted(ids))
            waiting = sorted(i for i in ids if by_id[i]["State"]["Name"] != "running")
            return True if not waiting else f"{len(waiting)} instances to run ({', '.join(waiting[:5])})"

        current = wait_for(module, client, cluster, ids, running)
    if current is None:
        current = {i["InstanceId"]: i for i in describe(client, cluster)}
    result["instances"] = sorted((summary(i) for i in current.values()),
                                 key=lambda s: (s["index"] is None, s["index"] or 0))
    module.exit_json(**result)


def ensure_absent(module, client):
    p = module.params
    cluster = p["cluster"]
    live = describe(client, cluster)
    wanted = set(p["indexes"])
    victims = [i["InstanceId"] for i in live if not wanted or index_of(i) in wanted]
    result = {"changed": bool(victims), "terminated_ids": victims, "launched_ids": [], "adopted_ids": []}
    if module.check_mode or not victims:
        result["instances"] = [summary(i) for i in live]
        module.exit_json(**result)
    for start in range(0, len(victims), TERMINATE_BATCH):
        chunk = victims[start:start + TERMINATE_BATCH]
        try:
            client.terminate_instances(aws_retry=True, InstanceIds=chunk)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg="TerminateInstances failed")
    current = None
    if p["wait"]:
        ids = set(victims)

        def gone(by_id):
            left = sorted(ids & set(by_id))
            return True if not left else f"{len(left)} instances to terminate ({', '.join(left[:5])})"

        current = wait_for(module, client, cluster, ids, gone)
    if current is None:
        current = {i["InstanceId"]: i for i in describe(client, cluster)}
    result["instances"] = [summary(i) for i in current.values()]
    module.exit_json(**result)


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            cluster=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            count=dict(type="int", default=0),
            launch_template_id=dict(type="str"),
            launch_template_version=dict(type="str", default="$Default"),
            client_token=dict(type="str", no_log=False),
            tags=dict(type="dict", default={}),
            role=dict(type="str", choices=["head", "worker", "dev"]),
            spot=dict(type="bool", default=False),
            spot_max_price=dict(type="str", default=""),
            shutdown_behavior=dict(type="str", choices=["stop", "terminate"]),
            indexes=dict(type="list", elements="int", default=[]),
            reserved=dict(type="list", elements="int", default=[]),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=600),
        ),
        supports_check_mode=True,
    )
    if module.params["count"] < 0:
        module.fail_json(msg="count must be >= 0")
    if module.params["state"] == "present" and module.params["indexes"] and \
            len(set(module.params["indexes"])) != module.params["count"]:
        module.fail_json(msg="with indexes, count must be their number")
    if module.params["client_token"] and len(module.params["client_token"]) > 64:
        module.fail_json(msg="client_token has at most 64 characters")
    # New instances may not be visible to CreateTags for a moment (eventual consistency): retry.
    retry = AWSRetry.jittered_backoff(retries=8, delay=1, catch_extra_error_codes=["InvalidInstanceID.NotFound"])
    client = module.client("ec2", retry_decorator=retry)
    if module.params["state"] == "present":
        ensure_present(module, client)
    else:
        ensure_absent(module, client)


if __name__ == "__main__":
    main()
