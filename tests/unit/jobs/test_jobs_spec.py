"""The job CSV: accepted as CSV allows, refused whole with the line of the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcloud_ansible.errors import UsageError
from vcloud_ansible.jobs import instance_types
from vcloud_ansible.jobs.spec import parse, parse_env, read_file, type_checker


def lab_check(types: list[str]) -> dict[str, str]:
    return type_checker(types, instance_types.known)


def refused(text: str) -> str:
    with pytest.raises(UsageError) as err:
        parse(text, "j.csv", lab_check)
    assert err.value.exit_code == 2
    return err.value.one_line()


def test_minimal_rows_get_names_and_indexes() -> None:
    rows = parse("instance_type,command\nt3.micro,echo a\nc5.large,exit 3\n", "j.csv", lab_check)
    assert [(r.index, r.line, r.name, r.instance_type, r.command) for r in rows] == [
        (0, 2, "job-0", "t3.micro", "echo a"), (1, 3, "job-1", "c5.large", "exit 3")]
    assert rows[0].env == {} and rows[0].timeout is None and rows[0].files == ()


def test_quoted_field_with_comma_newline_and_quote_is_one_field_and_lines_follow() -> None:
    text = ('name,instance_type,command,env,timeout,files\n'
            'a,t3.micro,"echo ""x, y""\necho second",A=1;B=two words,30,out/*.txt;log\n'
            '\n'
            'b,t3.small,true,,,\n')
    a, b = parse(text, "j.csv", lab_check)
    assert a.command == 'echo "x, y"\necho second'
    assert a.env == {"A": "1", "B": "two words"} and a.timeout == 30 and a.files == ("out/*.txt", "log")
    assert (b.name, b.line, b.index) == ("b", 5, 1)  # the quoted newline counts as a line


@pytest.mark.parametrize(("text", "words"), [
    ("", "j.csv:1: the job file is empty"),
    ("   \n\n", "j.csv:1: the job file is empty"),
    ("instance_type,command\n", "j.csv:1: the job file has a header but no jobs"),
    ("t3.micro,echo hi\n", "j.csv:1: no header"),
    ("instance_type,command,cmd\nt3.micro,x,y\n", "j.csv:1: unknown column cmd"),
    ("instance_type,cmd\nt3.micro,x\n", "j.csv:1: the header lacks command"),
    ("command\necho\n", "j.csv:1: the header lacks instance_type"),
    ("instance_type,command\nt3.micro,echo a\nt3.micro,echo b,extra\n", "j.csv:3: 3 fields, the header has 2"),
    ("instance_type,command\nt3.micro\n", "j.csv:2: 1 field, the header has 2"),
    ("instance_type,command\nt3.micro,echo a\nt3.micro,  \n", "j.csv:3: empty command"),
    ("instance_type,command\nt3.micro,a\nt9.huge,b\n", "j.csv:3: unknown instance type 't9.huge'"),
    ("instance_type,command,env\nt3.micro,a,A=1;NOEQUALS\n", "j.csv:2: env entry 'NOEQUALS' is not K=V"),
    ("instance_type,command,env\nt3.micro,a,1A=x\n", "j.csv:2: environment variable name '1A' cannot be exported"),
    ("instance_type,command,env\nt3.micro,a,VCA_X=1\n", "reserved"),
    ("instance_type,command,timeout\nt3.micro,a,soon\n", "j.csv:2: timeout 'soon'"),
    ("instance_type,command,name\nt3.micro,a,x\nt3.micro,b,x\n", "j.csv:3: job name 'x' is taken by line 2"),
    ("instance_type,command,name\nt3.micro,a,../up\n", "j.csv:2: job name '../up'"),
    ("instance_type,command,files\nt3.micro,a,/etc/passwd\n", "j.csv:2: file '/etc/passwd' is not below"),
    ('instance_type,command\nt3.micro,"echo open\n', "j.csv:2:"),
])
def test_refused_with_line(text: str, words: str) -> None:
    assert words in refused(text)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no job file"):
        read_file(tmp_path / "none.csv")
    (tmp_path / "bin.csv").write_bytes(b"instance_type,command\nt3.micro,\xff\n")
    with pytest.raises(UsageError, match=r"bin.csv:2: not UTF-8"):
        read_file(tmp_path / "bin.csv")
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfinstance_type,command\r\nt3.micro,true\r\n")
    assert read_file(tmp_path / "bom.csv")[0].command == "true"


def test_env_parsing() -> None:
    assert parse_env(" A=1 ; B= x=y ;") == {"A": "1", "B": " x=y"}
    with pytest.raises(UsageError, match="given twice"):
        parse_env("A=1;A=2")


def test_known_instance_types() -> None:
    for t in ("t3.micro", "c5.18xlarge", "m7i-flex.large", "m5.metal", "t4g.nano"):
        assert instance_types.known(t), t
    for t in ("t3", "t3.huge", "zz9.large", "", ".micro", "t3.micro.x"):
        assert not instance_types.known(t), t
