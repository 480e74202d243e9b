"""The cluster spec file: its reader (every refusal is one line naming the file) and its JSON Schema,
both derived from the providers' declared settings."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from vcloud_ansible.errors import UsageError
from vcloud_ansible.spec import ClusterSpecFile, ServiceSpec, json_schema, parse_spec, read_spec

EXAMPLE = """\
provider: ec2
nodes: {head: 1, worker: 3}
ec2:
  region: eu-west-1
  instance_type: c6i.large
  tags: {team: x, cost: 7}
  ssh_cidrs: [10.0.0.0/8]
  open_ports: "8080 53/udp"
  spot: true
  ssh_timeout: 600
  image_owner: 136693071363
  ssh_via: private
setup:
  all: [common]
  head: [nfs_server, community.general.thing]
  worker: []
"""


def _spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.yml"
    path.write_text(text)
    return path


def test_spec_file(tmp_path: Path) -> None:  # moved from test_ec2_settings.py
    spec = _spec(tmp_path, "provider: ec2\nnodes: 4\nec2:\n  region: eu-west-1\n  tags: {team: x}\n")
    got = read_spec(spec)
    assert (got.provider, got.nodes, got.settings) == ("ec2", 4, {"region": "eu-west-1", "tags": {"team": "x"}})
    spec.write_text("provider: ec2\nsize: 4\n")
    with pytest.raises(UsageError, match="unknown key size"):
        read_spec(spec)
    spec.write_text("ec2: [1, 2\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        read_spec(spec)
    with pytest.raises(UsageError, match="cannot read spec file"):
        read_spec(tmp_path / "missing.yml")


def test_spec_files_that_are_not_short_yaml_texts(tmp_path: Path) -> None:  # moved from test_ec2_settings.py
    binary = tmp_path / "bin.yml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(UsageError, match="is not a YAML text file"):
        read_spec(binary)
    binary.write_text("provider: ec2\x00\x01\n")  # valid UTF-8, still not text
    with pytest.raises(UsageError, match="is not a YAML text file"):
        read_spec(binary)
    big = tmp_path / "big.yml"
    big.write_text("#" * (1 << 20) + "\n")
    with pytest.raises(UsageError, match="is larger than 1 MiB"):
        read_spec(big)
    with pytest.raises(UsageError, match="spec file /dev/zero is not a regular file"):
        read_spec(Path("/dev/zero"))
    with pytest.raises(UsageError, match="is not a regular file"):
        read_spec(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="is not a regular file"):  # and does not wait for a writer
        read_spec(fifo)


def test_a_full_spec_is_typed(tmp_path: Path) -> None:
    got = read_spec(_spec(tmp_path, EXAMPLE))
    assert got == ClusterSpecFile(
        provider="ec2", nodes=4, nodes_by_role={"head": 1, "worker": 3}, section="ec2",
        settings={"region": "eu-west-1", "instance_type": "c6i.large", "tags": {"team": "x", "cost": "7"},
                  "ssh_cidrs": ["10.0.0.0/8"], "open_ports": ["8080", "53/udp"], "spot": True,
                  "ssh_timeout": 600, "image_owner": "136693071363", "ssh_via": "private"},
        setup={"all": ("common",), "head": ("nfs_server", "community.general.thing"), "worker": ()},
        path=tmp_path / "cluster.yml")
    assert got.total_to_provision() == 4


def test_empty_and_null_values_mean_not_given(tmp_path: Path) -> None:
    assert read_spec(_spec(tmp_path, "")) == ClusterSpecFile(path=tmp_path / "cluster.yml")
    got = parse_spec({"provider": None, "nodes": None, "setup": None, "ec2": {"region": None, "user": "root"}})
    assert got == ClusterSpecFile(section="ec2", settings={"user": "root"})
    assert got.total_to_provision() is None
    assert parse_spec({"provider": "local", "local": None}) == ClusterSpecFile(provider="local", section="local")


@pytest.mark.parametrize(("doc", "words"), [
    ([1, 2], "spec must be a mapping: keys: provider, nodes, setup, package, services, local, ec2, static"),
    ({"size": 4, "colour": 1},
     "spec: unknown key colour, size: known: provider, nodes, setup, package, services, local, ec2, static"),
    ({"provider": "gce"}, "spec: unknown provider 'gce': choose one of: local, ec2"),
    ({"provider": ["ec2"]}, "unknown provider"),
    ({"provider": "local", "ec2": {"region": "eu-west-1"}},
     "spec: section 'ec2' is for provider ec2, but the provider is local: remove the section, or set provider: ec2"),
    ({"local": {}, "ec2": {}}, "sections for providers local and ec2"),
    ({"ec2": {"colour": "blue"}}, "spec: unknown ec2 setting colour: known: region, image,"),
    ({"local": {"bridge": "br0"}}, "spec: unknown local setting bridge: provider local takes none"),
    ({"ec2": ["region"]}, "spec: 'ec2' must be a mapping of settings"),
    ({"ec2": {"root_volume_size": "big"}}, "spec: ec2.root_volume_size must be a whole number, got 'big'"),
    ({"ec2": {"ssh_timeout": True}}, "ec2.ssh_timeout must be a whole number, got 'True'"),
    ({"ec2": {"spot": "maybe"}}, "spec: ec2.spot must be true or false, got 'maybe'"),
    ({"ec2": {"ssh_via": "carrier-pigeon"}}, "ec2.ssh_via must be one of public, private, tag"),
    ({"ec2": {"role": "boss"}}, "ec2.role must be one of head, worker, dev"),
    ({"ec2": {"ssh_cidrs": [["10.0.0.0/8"]]}}, "ec2.ssh_cidrs must be a list of values"),
    ({"ec2": {"tags": {"team": {"a": 1}}}}, "ec2.tags must map names to single values"),
    ({"ec2": {"tags": ["nokey"]}}, "invalid tag 'nokey'"),
    ({"ec2": {"region": {"a": 1}}}, "ec2.region must be a single value"),
    ({"ec2": {"user": ["x"]}}, "ec2.user must be a single value, got '['x']'"),
    ({"ec2": {"ssh_timeout": "1\n2"}}, "ec2.ssh_timeout must be a whole number, got '1\\n2'"),
    ({"nodes": 0}, "spec: 'nodes' must be a whole number >= 1, got 0"),
    ({"nodes": True}, "'nodes' must be a whole number >= 1, or node role -> count"),
    ({"nodes": "4"}, "'nodes' must be a whole number >= 1, or node role -> count"),
    ({"nodes": {}}, "'nodes' must be a whole number >= 1, or node role -> count"),
    ({"nodes": {"gpu": 2}}, "spec: nodes: unknown node role 'gpu': node roles: head, worker, dev"),
    ({"nodes": {"worker": -1}}, "nodes.worker must be a whole number >= 0, got '-1'"),
    ({"nodes": {"worker": 1.5}}, "nodes.worker must be a whole number >= 0"),
    ({"nodes": {"head": 0, "worker": 0}}, "spec: 'nodes' adds up to 0: give at least one node"),
    ({"setup": ["common"]}, "spec: 'setup' must map all, head, worker, dev to lists of role names"),
    ({"setup": {"gpu": ["x"]}}, "spec: setup: unknown node role 'gpu': known: all, head, worker, dev"),
    ({"setup": {"all": "common"}}, "spec: setup.all must be a list of role names, got 'common'"),
    ({"setup": {"head": ["../evil"]}}, "spec: setup.head: invalid role name '../evil'"),
    ({"setup": {"head": [7]}}, "setup.head: invalid role name '7'"),
    ({"setup": {"dev": ["ok", "bad name"]}}, "setup.dev: invalid role name 'bad name'"),
])
def test_refused_specs(doc: Any, words: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_spec(doc)
    line = info.value.one_line()
    assert words in line and "\n" not in line, line


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = _spec(tmp_path, "ec2:\n  ssh_timeout: soon\n")
    with pytest.raises(UsageError, match=f"spec file {path} line 2: ec2.ssh_timeout must be a whole number"):
        read_spec(path)
    path.write_text("provider: local\nnodes: {head: 2}\n")
    with pytest.raises(UsageError, match=f"spec file {path}: nodes by role \\(head: 2\\) cannot be provisioned"):
        read_spec(path).total_to_provision()


@pytest.mark.parametrize(("by_role", "total"), [
    ({"head": 1}, 1), ({"head": 1, "worker": 7}, 8), ({"head": 1, "worker": 2, "dev": 0}, 3),
])
def test_node_counts_by_role_that_vca_gives_anyway(by_role: dict[str, int], total: int) -> None:
    assert parse_spec({"nodes": by_role}).total_to_provision() == total


@pytest.mark.parametrize("by_role", [{"worker": 3}, {"head": 2, "worker": 1}, {"head": 1, "dev": 1}])
def test_node_counts_by_role_vca_cannot_give_yet_are_refused(by_role: dict[str, int]) -> None:
    spec = parse_spec({"nodes": by_role})
    assert spec.nodes == sum(by_role.values()) and spec.nodes_by_role == by_role
    with pytest.raises(UsageError) as info:
        spec.total_to_provision()
    assert "cannot be provisioned from a spec file yet: " in info.value.one_line()
    assert "`vca provision N --role ROLE`" in info.value.one_line()


# --- the JSON Schema ------------------------------------------------------------------------------------


def test_schema_structure_follows_the_declarations() -> None:
    from vcloud_ansible.providers.ec2.settings import SETTINGS

    schema = json_schema()
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert set(props) == {"provider", "nodes", "setup", "package", "services", "local", "ec2", "static"}
    assert props["provider"]["enum"] == ["local", "ec2", "static", None]
    assert list(props["ec2"]["properties"]) == [s.key for s in SETTINGS]
    assert props["ec2"]["additionalProperties"] is False and props["local"]["properties"] == {}
    assert props["ec2"]["properties"]["ssh_via"]["anyOf"][0] == {"enum": ["public", "private", "tag"]}
    assert props["ec2"]["properties"]["ssh_timeout"]["default"] == 300
    assert set(props["setup"]["properties"]) == {"all", "head", "worker", "dev"}
    assert {"not": {"required": ["local", "ec2"]}} in schema["allOf"]


def test_cli_prints_the_schema() -> None:
    import json

    from click.testing import CliRunner

    from vcloud_ansible.cli.main import cli

    res = CliRunner().invoke(cli, ["spec-schema"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == json_schema()


VALID: list[Any] = [
    yaml.safe_load(EXAMPLE),
    None,
    {"provider": "local", "nodes": 3},
    {"ec2": {"region": "us-east-1", "tags": "a=b c=d", "spot": "yes", "ssh_timeout": "30", "lifetime": 0}},
    {"provider": "ec2", "ec2": None, "setup": {"dev": None}},
    {"provider": "static", "static": {"user": "ops", "port": 2222, "hosts": [
        "10.0.0.5", "ops@10.0.0.6:2222", {"host": "10.0.0.7", "capabilities": ["redis"], "role": "head"}]}},
    {"nodes": 3, "package": "app/", "services": [{"name": "web", "command": "python3 -m http.server 8080"},
                                                 {"name": "q", "command": ["redis-server"], "node": "head",
                                                  "failover": False}]},
    {"package": {"path": "app", "env": {"GREETING": "hi", "N": 3}}},
]
INVALID: list[Any] = [
    {"size": 4},
    {"provider": "gce"},
    {"provider": "local", "ec2": {}},
    {"local": {}, "ec2": {}},
    {"ec2": {"colour": "blue"}},
    {"local": {"bridge": "br0"}},
    {"ec2": {"root_volume_size": "big"}},
    {"ec2": {"spot": "maybe"}},
    {"ec2": {"ssh_via": "carrier-pigeon"}},
    {"ec2": {"ssh_cidrs": [["x"]]}},
    {"nodes": 0},
    {"nodes": True},
    {"nodes": {"gpu": 1}},
    {"nodes": {"worker": -1}},
    {"setup": {"gpu": ["x"]}},
    {"setup": {"all": "common"}},
    {"setup": {"all": ["../evil"]}},
    {"package": 3},
    {"package": {"path": "app", "colour": 1}},
    {"package": {"path": "app", "env": {"1BAD": "x"}}},
    {"services": {"web": "x"}},
    {"services": [{"name": "web"}]},
    {"services": [{"name": "web", "command": "x", "replicas": 2}]},
    {"services": [{"name": "web", "command": "x", "failover": "sometimes"}]},
    {"services": [{"name": "Web!", "command": "x"}]},
    {"static": {"hosts": [{"host": "h", "gpus": 1}]}},
    {"static": {"port": "ssh"}},
]


@pytest.mark.parametrize("doc", VALID)
def test_valid_specs_pass_reader_and_schema(doc: Any) -> None:
    parse_spec(doc)
    validator = _validator()
    if validator is not None:
        assert list(validator.iter_errors(doc if doc is not None else {})) == []


@pytest.mark.parametrize("doc", INVALID)
def test_invalid_specs_fail_reader_and_schema(doc: Any) -> None:
    with pytest.raises(UsageError):
        parse_spec(doc)
    validator = _validator()
    if validator is not None:
        assert list(validator.iter_errors(doc)), doc


def _validator() -> Any:
    """A validator when jsonschema is installed (it comes with the lint tools, not with vca); without
    it the structure test above still checks the schema."""
    try:
        import jsonschema
    except ImportError:
        return None
    jsonschema.Draft202012Validator.check_schema(json_schema())
    return jsonschema.Draft202012Validator(json_schema())


def test_lines_of_keys_in_errors(tmp_path: Path) -> None:
    path = _spec(tmp_path, "nodes: 3\npackage: app\nservices:\n  - name: web\n    command: x\n    replicas: 2\n")
    with pytest.raises(UsageError) as exc:
        read_spec(path)
    assert exc.value.one_line() == (f"spec file {path} line 6: unknown key services[0].replicas: "
                                    "known: name, command, node, failover")
    path.write_text("nodes: 2\ncolour: blue\n")
    with pytest.raises(UsageError, match=f"spec file {path} line 2: unknown key colour"):
        read_spec(path)
    path.write_text("nodes: 2\nec2:\n  region: x\n  spot: maybe\n")
    with pytest.raises(UsageError, match=f"spec file {path} line 4: ec2.spot must be true or false"):
        read_spec(path)
    path.write_text("nodes: [2\n")
    with pytest.raises(UsageError, match="is not valid YAML \\(line 2\\)"):
        read_spec(path)


def test_package_and_services_are_typed(tmp_path: Path) -> None:
    path = _spec(tmp_path, "package: {path: app, env: {N: 3}}\nservices:\n  - {name: web, command: a b}\n")
    spec = read_spec(path)
    assert spec.package == tmp_path / "app" and spec.package_env == {"N": "3"}
    assert spec.services == (ServiceSpec("web", ("a", "b")),)


def _readme_specs() -> list[str]:
    """Every YAML block of README.md that is a spec file (it starts with a spec key)."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```ya?ml\n(.*?)```", text, re.S)
    return [b for b in blocks if re.match(r"^(provider|nodes|setup|package|services|local|ec2|static):", b, re.M)]


def test_every_readme_spec_passes_reader_and_schema() -> None:
    specs = _readme_specs()
    assert specs, "README.md shows spec files in ```yaml blocks"
    validator = _validator()
    for text in specs:
        doc = yaml.safe_load(text)
        parse_spec(doc)
        if validator is not None:
            assert list(validator.iter_errors(doc)) == [], text
