#!/usr/bin/python
# ruff: noqa: E402  # Ansible modules carry their documentation before the imports
"""Keep a launch template's latest version equal to the given data, in one or two EC2 calls."""

from __future__ import annotations

import contextlib
import uuid

DOCUMENTATION = r"""
module: vca_ec2_launch_template
short_description: Ensure a tagged launch template whose latest version carries the given data
description:
  - Creates the launch template O(name) with O(data) and O(tags) when it does not exist. Otherwise
    compares the fields of O(data) with its latest version and, when one differs, adds a version and
    makes it the default.
  - Only the fields given are compared, so defaults the service fills in (or tags some EC2
    look-alikes copy into the data) never cause a new version; a second run changes nothing.
  - Calls, when nothing changed: one DescribeLaunchTemplateVersions.
  - M(amazon.aws.ec2_launch_template) compares the whole data and costs about four calls per run.
options:
  name:
    description: Name of the launch template.
    type: str
    required: true
  data:
    description: LaunchTemplateData in the EC2 API's shape (ImageId, InstanceType, KeyName, ...).
    type: dict
    required: true
  tags:
    description: Tags of the launch template itself, set when it is created.
    type: dict
    default: {}
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Describe the nodes of cluster demo
  vca_ec2_launch_template:
    name: vca-demo
    data:
      ImageId: ami-0123456789abcdef0
      InstanceType: t3.micro
    tags: {"vca:cluster": demo}
"""

RETURN = r"""
launch_template_id:
  description: Id of the template.
  returned: always
  type: str
version:
  description: Its latest version number, the one that carries O(data).
  returned: always
  type: int
"""

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore itself
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry


def covers(current, wanted):
    """Whether ``current`` holds every field of ``wanted`` with the same value (dicts: recursively)."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(covers(current.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(current, list) and len(current) == len(wanted)
                and all(covers(c, w) for c, w in zip(current, wanted, strict=True)))
    return current == wanted or (current is not None and str(current) == str(wanted))


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(name=dict(type="str", required=True), data=dict(type="dict", required=True),
                           tags=dict(type="dict", default={})),
        supports_check_mode=True,
    )
    client = module.client("ec2", retry_decorator=AWSRetry.jittered_backoff())
    name, data = module.params["name"], module.params["data"]
    try:
        try:
            latest = client.describe_launch_template_versions(
                aws_retry=True, LaunchTemplateName=name, Versions=["$Latest"])["LaunchTemplateVersions"]
        except botocore.exceptions.ClientError as e:
            if "NotFound" not in e.response.get("Error", {}).get("Code", ""):
                raise
            latest = []
        if not latest:
            if module.check_mode:
                module.exit_json(changed=True, launch_template_id=None, version=1)
            tags = [{"Key": k, "Value": str(v)} for k, v in sorted(module.params["tags"].items())]
            kwargs = {"LaunchTemplateName": name, "LaunchTemplateData": data, "ClientToken": uuid.uuid4().hex}
            if tags:
                kwargs["TagSpecifications"] = [{"ResourceType": "launch-template", "Tags": tags}]
            made = client.create_launch_template(aws_retry=True, **kwargs)["LaunchTemplate"]
            module.exit_json(changed=True, launch_template_id=made["LaunchTemplateId"],
                             version=int(made.get("LatestVersionNumber", 1)))
        current = latest[0]
        if covers(current.get("LaunchTemplateData", {}), data):
            module.exit_json(changed=False, launch_template_id=current["LaunchTemplateId"],
                             version=int(current["VersionNumber"]))
        if module.check_mode:
            module.exit_json(changed=True, launch_template_id=current["LaunchTemplateId"],
                             version=int(current["VersionNumber"]) + 1)
        made = client.create_launch_template_version(
            aws_retry=True, LaunchTemplateId=current["LaunchTemplateId"], LaunchTemplateData=data,
            ClientToken=uuid.uuid4().hex)["LaunchTemplateVersion"]
        version = int(made["VersionNumber"])
        # The default follows, so that a launch by hand from the template gets what vca would.
        client.modify_launch_template(aws_retry=True, LaunchTemplateId=current["LaunchTemplateId"],
                                      DefaultVersion=str(version))
        module.exit_json(changed=True, launch_template_id=current["LaunchTemplateId"], version=version)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"ensuring launch template {name} failed")


if __name__ == "__main__":
    main()
