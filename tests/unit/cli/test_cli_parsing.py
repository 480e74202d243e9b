from __future__ import annotations

import click
import pytest

from vcloud_ansible.cli.context import parse_indexes
from vcloud_ansible.cli.run import parse_extravars
from vcloud_ansible.cluster import format_uptime, index_ranges
from vcloud_ansible.errors import UsageError


def test_parse_indexes() -> None:
    assert parse_indexes(("1", "3,4", "6-8")) == [1, 3, 4, 6, 7, 8]
    refs = parse_indexes(("1", "head,demo-3", "workers", "10.0.0.7"))
    assert refs.ranges == ((1, 1),) and refs.refs == ("head", "demo-3", "workers", "10.0.0.7")
    for bad in ("-1", "2-", "1.5", "3-x", "a b", "1.2.3"):
        with pytest.raises(click.UsageError, match="node index must be"):
            parse_indexes((bad,))


def test_parse_extravars() -> None:
    assert parse_extravars(("pkg=examples/hello", "n=3", "flag=true", "empty=", "s=a=b")) == {
        "pkg": "examples/hello", "n": 3, "flag": True, "empty": "", "s": "a=b",
    }
    assert parse_extravars(("l=[1, 2]",)) == {"l": "[1, 2]"}  # only scalars are interpreted
    with pytest.raises(UsageError, match="expected key=value"):
        parse_extravars(("novalue",))
    with pytest.raises(UsageError):
        parse_extravars(("bad-key=1",))


def test_index_ranges_and_uptime() -> None:
    assert index_ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert index_ranges([]) == ""
    assert [format_uptime(x) for x in (None, 5, 65, 7322)] == ["-", "5s", "1m05s", "2h02m"]


def test_commands_load_lazily_and_all_resolve() -> None:
    import subprocess
    import sys

    import click

    from vcloud_ansible.cli.main import COMMANDS, cli

    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name
    assert cli.get_command(ctx, "nosuch") is None
    # `vca status` must not pay for collect's or provisioning's imports
    probe = ("import sys, vcloud_ansible.cli.main, vcloud_ansible.cli.nodes; "
             "print(sorted(k for k in sys.modules if k.startswith('vcloud_ansible.')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "vcloud_ansible.collect" not in loaded and "vcloud_ansible.cli.lifecycle'" not in loaded, loaded
    assert "vcloud_ansible.cli.nodes'" in loaded


# --- issue 9: job environment values are text, byte for byte; keys the shell can export -----------------


def test_inject_env_values_are_kept_byte_for_byte() -> None:
    from vcloud_ansible.release.inject import parse_env

    odd = "l1\nl2\n  indented\n\ttab 'single' \"double\" $HOME `cmd` \\back\\ ü 日本 {{ x }} #c"
    pairs = ("V=1.10", "O=0755", "Y=yes", "T=12:30", "H=0x1F", "U=1_000", "N=null", "E=", "S=a=b",
             "L=[1, 2]", f"M={odd}", "_x9=~")
    assert parse_env(pairs) == {
        "V": "1.10", "O": "0755", "Y": "yes", "T": "12:30", "H": "0x1F", "U": "1_000", "N": "null", "E": "",
        "S": "a=b", "L": "[1, 2]", "M": odd, "_x9": "~"}
    assert all(type(v) is str for v in parse_env(pairs).values())


@pytest.mark.parametrize(("pair", "words"), [
    ("ÜNI=x", "cannot be exported"),
    ("1A=x", "cannot be exported"),
    ("A-B=x", "cannot be exported"),
    ("A B=x", "cannot be exported"),
    ("=x", "cannot be exported"),
    ("novalue", "KEY=VALUE"),
    ("VCA_NODE_INDEX=3", "reserved"),
    ("VCA_ANYTHING=3", "reserved"),
    ("A=x\nVCA_EOF_7f3a9c\necho", "marker"),
    ("A=\udcff", "UTF-8"),
])
def test_inject_env_bad_keys_refused(pair: str, words: str) -> None:
    from vcloud_ansible.release.inject import parse_env

    with pytest.raises(UsageError, match=words):
        parse_env((pair,))


def test_job_env_for_the_playbook_path() -> None:
    from vcloud_ansible.release.inject import check_env

    text = '{"O": "0755", "M": "l1\\nl2", "T": "{{ 7*7 }}"}'
    assert check_env(text) == {"O": "0755", "M": "l1\nl2", "T": "{{ 7*7 }}"}
    assert check_env({"A": "x"}) == {"A": "x"}
    assert check_env(None) == {} and check_env("") == {}
    for bad, words in (({"O": 493}, "quote it"), ("{O: 0755}", "quote it"), ({"ÜNI": "x"}, "cannot be exported"),
                       ("[1]", "mapping"), ({"VCA_ROLE": "x"}, "reserved"), ({"A": None}, "quote it")):
        with pytest.raises(UsageError) as exc:
            check_env(bad)
        assert words in exc.value.one_line()


def test_vca_run_keeps_typed_scalars_but_job_env_is_literal_text() -> None:
    from vcloud_ansible.playbook.runner import Verbatim

    out = parse_extravars(("n=0755", "v=1.10", "job_env={\"T\": \"{{ 7*7 }}\"}"))
    assert out["n"] == 493 and out["v"] == 1.1  # typed YAML scalars, as documented for playbooks
    assert isinstance(out["job_env"], Verbatim) and out["job_env"] == '{"T": "{{ 7*7 }}"}'


@pytest.mark.parametrize(("text", "kib"), [("1024", 1), ("1K", 1), ("512M", 512 << 10), ("2G", 2 << 20),
                                           ("1KiB", 1), (None, 0), ("", 0)])
def test_parse_mem(text: str | None, kib: int) -> None:
    from vcloud_ansible.release.inject import parse_mem

    assert parse_mem(text) == kib


@pytest.mark.parametrize("text", ["100", "0", "0K", "0M", "1023", "1023B", "x", "-5M", "1.5G"])
def test_parse_mem_refuses_sizes_under_one_kib(text: str) -> None:
    from vcloud_ansible.release.inject import parse_mem

    with pytest.raises(UsageError, match="memory limit"):
        parse_mem(text)
