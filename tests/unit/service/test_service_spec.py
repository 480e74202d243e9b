"""Service names, commands, their CIB XML and the reading back of services from the CIB and crm_mon."""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET

import pytest

from vcloud_ansible.errors import UsageError
from vcloud_ansible.service import spec


@pytest.mark.parametrize("name", ["Web", "web server", "", "1web", "a" * 41, "web;rm"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match="invalid service name"):
        spec.check_name(name)


def test_empty_commands_are_refused() -> None:
    for command in ([], [""], ["  "]):
        with pytest.raises(UsageError, match="needs a command"):
            spec.check_command(command)


def test_pidfile_is_put_where_the_command_says_and_quoting_survives() -> None:
    line, own = spec.node_command("db", ["run-db", "--pid", "PIDFILE", "a b", "it's"])
    assert own
    assert shlex.split(line) == ["run-db", "--pid", "/run/vca-services/db.pid", "a b", "it's"]
    line, own = spec.node_command("web", ["python3", "-m", "http.server"])
    assert not own and line == "python3 -m http.server"


def test_primitive_is_created_stopped_with_the_command_kept() -> None:
    xml = spec.primitive_xml("web", ["sh", "-c", 'echo "<&>"'], placement="c-1", user="www", cwd="/srv",
                             failover=False)
    p = ET.fromstring(xml)
    assert (p.get("class"), p.get("provider"), p.get("type")) == spec.AGENT
    nv = {e.get("name"): e.get("value") for e in p.iter("nvpair")}
    assert nv["target-role"] == "Stopped"
    assert json.loads(nv["vca-command"] or "") == ["sh", "-c", 'echo "<&>"']
    assert nv["user"] == "www" and nv["cwd"] == "/srv" and nv["vca-failover"] == "false"
    assert "migration-threshold" not in nv  # a service that must not move never moves on failures either
    assert ET.fromstring(spec.pin_xml("web", "c-1")).find("./rule").get("score") == "-INFINITY"  # type: ignore[union-attr]


CIB = """<cib><configuration><resources>
{web}
<primitive id="c-3" class="ocf" provider="pacemaker" type="remote"/>
</resources><constraints/></configuration>
<status>
 <node_state uname="c-0"><transient_attributes><instance_attributes>
   <nvpair name="fail-count-web#monitor_5000" value="2"/></instance_attributes></transient_attributes>
  <lrm><lrm_resources><lrm_resource id="web">
   <lrm_rsc_op operation="start" rc-code="0" last-rc-change="1700000000"/></lrm_resource></lrm_resources></lrm>
 </node_state>
 <node_state uname="c-1"><lrm><lrm_resources><lrm_resource id="web">
   <lrm_rsc_op operation="start" rc-code="0" last-rc-change="1700000100"/></lrm_resource></lrm_resources></lrm>
 </node_state>
</status></cib>"""
MON = """<pacemaker-result><resources>
<resource id="web" resource_agent="ocf:vca:service" role="Started" active="true" failed="false">
 <node name="c-1" id="2" cached="true"/></resource>
</resources></pacemaker-result>"""


def test_services_are_read_back_with_node_fail_count_and_since() -> None:
    web = spec.primitive_xml("web", ["python3", "-m", "http.server"], placement="any", user=None, cwd=None,
                             failover=True)
    [info] = spec.parse(CIB.format(web=web), MON)
    assert info.name == "web" and info.command == ["python3", "-m", "http.server"]
    assert info.node == "c-1" and info.state == "running" and info.failover
    assert info.fail_count == 2
    assert info.since == "2023-11-14T22:15:00+00:00"  # the start where it runs now, not the older one
    stopped = spec.parse(CIB.format(web=web), "<pacemaker-result/>")[0]
    assert stopped.state == "stopped" and stopped.node is None and stopped.since is None


def test_resource_ids_include_remote_nodes() -> None:
    assert spec.resource_ids('<resources><primitive id="a"/><group id="g"><primitive id="b"/></group></resources>') \
        == {"a", "g", "b"}


def test_a_service_being_stopped_is_not_stopped_yet() -> None:
    web = spec.primitive_xml("web", ["x"], placement="any", user=None, cwd=None, failover=True)
    stopping = MON.replace('role="Started"', 'role="Stopping"')
    [info] = spec.parse(CIB.format(web=web), stopping)
    assert info.state == "stopping" and info.node == "c-1"
