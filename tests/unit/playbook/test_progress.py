"""The progress handler fed with synthetic ansible-runner events (the shapes ansible-runner 2.4 emits)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from vcloud_ansible.playbook.progress import (
    SUMMARY_ROWS,
    HostOutcome,
    PlaybookProgress,
    failure_message,
    natural_key,
    one_line,
    summary_table,
)


def plain_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, width=160)


def output(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def task_start(name: str, uuid: str) -> dict[str, Any]:
    return {"event": "playbook_on_task_start", "event_data": {"task": name, "task_uuid": uuid}}


def result(kind: str, host: str, task: str, uuid: str, **data: Any) -> dict[str, Any]:
    event_data = {"host": host, "task": task, "task_uuid": uuid, **data}
    return {"event": f"runner_on_{kind}", "event_data": event_data, "stdout": f"{kind}: [{host}]"}


def stats(**counts: dict[str, int]) -> dict[str, Any]:
    keys = ("ok", "changed", "failures", "dark", "skipped", "processed", "rescued", "ignored")
    data = {key: counts.get(key, {}) for key in keys}
    return {"event": "playbook_on_stats", "event_data": data}


def test_natural_key_orders_numbers_as_numbers() -> None:
    names = ["node-10", "node-2", "node-1", "h10", "h2", "h1", "node-2b"]
    assert sorted(names, key=natural_key) == ["h1", "h2", "h10", "node-1", "node-2", "node-2b", "node-10"]


def test_one_line_collapses_and_trims() -> None:
    assert one_line("a\n  b\tc ") == "a b c"
    trimmed = one_line("x" * 500, limit=20)
    assert len(trimmed) == 20 and trimmed.endswith("…")


def test_failure_message_variants() -> None:
    assert failure_message({"msg": "boom"}) == "boom"
    assert failure_message({"msg": "", "failed_when_result": True}) == "failed_when condition is true"
    assert failure_message({"msg": "ok", "failed_when_result": True}) == "failed_when condition is true: ok"
    assert (
        failure_message({"msg": "non-zero return code", "rc": 2, "stderr": "warn\nls: no such file\n"})
        == "non-zero return code (rc=2): ls: no such file"
    )
    assert failure_message({"msg": "MODULE FAILURE", "module_stderr": "Traceback\nValueError: x"}).endswith(
        "ValueError: x"
    )
    hidden = failure_message({"censored": "the output has been hidden due to no_log", "msg": "secret!"})
    assert "secret" not in hidden.replace("hidden", "")
    loop = {
        "msg": "One or more items failed",
        "results": [
            {"item": "a", "failed": False},
            {"item": "b", "failed": True, "msg": "non-zero return code", "rc": 1},
        ],
    }
    assert failure_message(loop) == "item b: non-zero return code (rc=1)"
    assert failure_message({"msg": "Task failed: Data could not be sent"}) == "Data could not be sent"
    assert failure_message(None) == "failed"


def test_host_outcome_status() -> None:
    assert HostOutcome("a").status == "ok"
    assert HostOutcome("a", ok=2, changed=1).status == "changed"
    assert HostOutcome("a", ok=2, changed=1, failed=1).status == "failed"
    assert HostOutcome("a", unreachable=1).status == "unreachable"


def run_events(progress: PlaybookProgress, events: list[dict[str, Any]]) -> None:
    with progress:
        for event in events:
            assert progress.handle(event) is True


def test_counts_failures_and_summary_in_plain_mode() -> None:
    console = plain_console()
    progress = PlaybookProgress(console, "inject", ["h1", "h2", "h10"])
    assert not progress.live
    events = [
        {"event": "playbook_on_start", "event_data": {}},
        task_start("copy package", "t1"),
        result("ok", "h1", "copy package", "t1", res={"changed": True}),
        result("ok", "h10", "copy package", "t1", res={"changed": False}),
        result("failed", "h2", "copy package", "t1", res={"msg": "disk full"}, ignore_errors=None),
        task_start("launch", "t2"),
        result("ok", "h1", "launch", "t2", res={"changed": True}),
        result("unreachable", "h10", "launch", "t2", res={"msg": "Connection refused"}),
    ]
    with progress:
        for event in events:
            progress.handle(event)
        assert progress.task == "launch"
        assert progress.total == 3
        assert progress.done == 3  # h1 through "launch", h2 and h10 out of the play
    text = output(console)
    assert "✗ h2: copy package: disk full" in text
    assert "✗ h10: launch: Connection refused" in text
    assert "TASK" not in text  # no task lines, no animation
    hosts = progress.outcomes()
    assert list(hosts) == ["h1", "h2", "h10"]
    assert (hosts["h1"].ok, hosts["h1"].changed) == (2, 2)
    h2 = hosts["h2"]
    assert (h2.failed, h2.failed_task, h2.message) == (1, "copy package", "disk full")
    assert hosts["h10"].status == "unreachable"

    progress.print_summary()
    table = output(console)[len(text) :]
    for needle in ("inject: 3 hosts", "h1", "h2", "h10", "copy package: disk full", "unreachable"):
        assert needle in table
    assert table.index("h2 ") < table.index("h10")


def test_stats_are_authoritative_and_rescued_failures_forgotten() -> None:
    progress = PlaybookProgress(plain_console(), "t")
    run_events(
        progress,
        [
            task_start("try", "t1"),
            result("failed", "h1", "try", "t1", res={"msg": "first attempt"}),
            result("failed", "h2", "try", "t1", res={"msg": "ignored"}, ignore_errors=True),
            stats(ok={"h1": 3, "h2": 1}, changed={"h1": 1}, processed={"h1": 1, "h2": 1}, rescued={"h1": 1}),
        ],
    )
    hosts = progress.outcomes()
    assert hosts["h1"].status == "changed" and hosts["h1"].failed_task is None
    assert hosts["h2"].status == "ok" and hosts["h2"].failed == 0
    assert progress.done == progress.total == 2


def test_playbook_error_lines_are_captured_without_colour() -> None:
    console = plain_console()
    progress = PlaybookProgress(console, "t")
    run_events(
        progress,
        [
            {"event": "verbose", "stdout": "\x1b[0;31m[ERROR]: YAML parsing failed: bad colon\x1b[0m"},
            {"event": "verbose", "stdout": "\x1b[0;31m[ERROR]: second\x1b[0m"},
            {"event": "verbose", "stdout": "Origin: x.yml:1:2"},
        ],
    )
    assert progress.error == "[ERROR]: YAML parsing failed: bad colon"
    assert "✗ [ERROR]: YAML parsing failed" in output(console)
    assert "Origin" not in output(console)


def test_verbose_mode_streams_ansible_output_and_prints_no_failure_lines() -> None:
    console = plain_console()
    progress = PlaybookProgress(console, "t", verbose=True)
    run_events(
        progress,
        [
            {"event": "playbook_on_play_start", "event_data": {}, "stdout": "\r\nPLAY [all] ***"},
            task_start("boom", "t1"),
            result("failed", "h1", "boom", "t1", res={"msg": "bad"}),
        ],
    )
    text = output(console)
    assert "PLAY [all] ***" in text and "failed: [h1]" in text
    assert "✗" not in text
    assert progress.outcomes()["h1"].failed_task == "boom"


def test_live_mode_on_a_terminal_starts_and_stops() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    progress = PlaybookProgress(console, "inject", ["h1"])
    assert progress.live
    run_events(progress, [task_start("copy", "t1"), result("failed", "h1", "copy", "t1", res={"msg": "x"})])
    assert "h1" in output(console) and "copy" in output(console)
    assert progress._live is None


def test_summary_folds_many_good_hosts_but_lists_every_failure() -> None:
    hosts = {f"n{i}": HostOutcome(f"n{i}", ok=2, changed=1) for i in range(1, 51)}
    hosts["n40"] = HostOutcome("n40", ok=1, failed=1, failed_task="launch", message="exit 3")
    console = Console(file=io.StringIO(), force_terminal=False, width=160)
    console.print(summary_table(hosts, "inject", 3.0))
    text = output(console)
    assert "n40" in text and "launch: exit 3" in text
    assert f"… {50 - SUMMARY_ROWS} more" in text
    assert "n50" not in text


def test_summary_without_hosts() -> None:
    console = plain_console()
    console.print(summary_table({}, "inject"))
    assert "inject: no hosts ran" in output(console)
