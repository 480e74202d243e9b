"""The compile request's checks, build detection, log reading, and which dev node a compile removes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vcloud_ansible.compile import plan, run
from vcloud_ansible.compile.plan import CompileRequest
from vcloud_ansible.errors import UsageError


def _src(tmp_path: Path, *files: str) -> Path:
    src = tmp_path / "app"
    src.mkdir()
    for f in files:
        (src / f).write_text("x\n")
    return src


def test_build_detected_in_order(tmp_path: Path) -> None:
    src = _src(tmp_path, "CMakeLists.txt", "Makefile", "SConstruct")
    req = CompileRequest(src)
    assert plan.build_command(req) == ("scons -j$(nproc)", "SConstruct")
    (src / "SConstruct").unlink()
    assert plan.build_command(req) == ("make -j$(nproc)", "Makefile")
    (src / "Makefile").unlink()
    assert plan.build_command(req)[1] == "CMakeLists.txt"
    launch = src / "vcloud-launch"
    launch.write_text("#!/bin/sh\n")
    assert plan.build_command(req)[1] == "CMakeLists.txt"  # not executable: not a launch script
    os.chmod(launch, 0o755)
    assert plan.build_command(req) == ("./vcloud-launch", "vcloud-launch")
    req.build = "make app"
    assert plan.build_command(req) == ("make app", "--build")


def test_no_way_to_build(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no way to build"):
        CompileRequest(_src(tmp_path, "main.cpp")).check()


@pytest.mark.parametrize("artifact", ["/etc/passwd", "~/x", "..", "../x", "a/../../x", ".", ""])
def test_artifacts_stay_inside_the_build_folder(artifact: str) -> None:
    with pytest.raises(UsageError):
        plan.check_artifact(artifact)


def test_artifact_paths_normalised() -> None:
    assert plan.check_artifact("./bin//app") == "bin/app"
    assert plan.check_artifact("build/*.so") == "build/*.so"


def test_package_checks(tmp_path: Path) -> None:
    src = _src(tmp_path, "SConstruct")
    launch = tmp_path / "launch"
    launch.write_text("#!/bin/sh\n")
    with pytest.raises(UsageError, match="go together"):
        CompileRequest(src, artifacts=["a"], package=tmp_path / "p").check()
    with pytest.raises(UsageError, match="needs at least one --artifact"):
        CompileRequest(src, package=tmp_path / "p", launch=launch).check()
    with pytest.raises(UsageError, match="is not a file"):
        CompileRequest(src, artifacts=["a"], package=tmp_path / "p", launch=tmp_path / "nope").check()
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(UsageError, match="is not empty"):
        CompileRequest(src, artifacts=["a"], package=full, launch=launch).check()
    req = CompileRequest(src, artifacts=["a"], package=full, launch=launch, force=True)
    req.check()
    assert req.out is None  # --package alone: no --out folder


def test_outputs_inside_src_never_travel(tmp_path: Path) -> None:
    src = _src(tmp_path, "SConstruct")
    req = CompileRequest(src, out=src / "bin")
    req.check()
    assert req.excluded()[0] == "- /bin/"
    assert ":- .gitignore" in req.excluded()
    other = CompileRequest(tmp_path / "app")
    other.check()
    assert other.key.startswith("app-") and other.key != CompileRequest(tmp_path).key


def test_compile_lines_and_error_line() -> None:
    log = [
        "scons: Building targets ...",
        "g++ -o greet.o -c -O2 greet.cpp",
        "/usr/lib/ccache/g++ -O2 -c main.cpp -o main.o",
        "[ 50%] Building CXX object CMakeFiles/app.dir/main.cpp.o",
        "g++ -o hello main.o greet.o -lboost_program_options",
        "greet.cpp:4:12: error: 'x' was not declared in this scope",
        "scons: *** [greet.o] Error 1",
    ]
    assert [plan.is_compile_line(line) for line in log] == [False, True, True, True, False, False, False]
    assert plan.error_line(log) == "greet.cpp:4:12: error: 'x' was not declared in this scope"
    assert plan.error_line(["all good"]) is None


# -- which node a compile makes and removes (a fake cluster: the lab test covers the real one) ----------

@dataclass
class FakeNode:
    index: int
    role: str
    name: str = ""
    state: str = "running"


@dataclass
class FakeCluster:
    nodes_: list[FakeNode]
    existed: bool = True
    setup_named: dict[str, list[str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    name: str = "c"

    def exists(self) -> bool:
        return self.existed

    def nodes(self) -> list[FakeNode]:
        return self.nodes_

    def setup_roles(self) -> dict[str, list[str]]:
        return self.setup_named

    def setup(self, indexes: list[int], **kw: Any) -> None:
        self.calls.append(f"setup {indexes} {kw['add']}@{kw['on']}")

    def provision(self, count: int, **kw: Any) -> list[FakeNode]:
        self.calls.append(f"provision {count} {kw['role']} {kw['setup']}")
        node = FakeNode(len(self.nodes_), "dev")
        self.nodes_.append(node)
        return [node]


def test_dev_node_reused_made_or_given_the_toolchain() -> None:
    c = FakeCluster([FakeNode(0, "worker"), FakeNode(3, "dev"), FakeNode(2, "dev")],
                    setup_named={"dev": ["toolchain"]})
    node, made, made_cluster = run.dev_node(c, lambda _m: None)  # type: ignore[arg-type]
    assert (node.index, made, made_cluster, c.calls) == (2, False, False, [])
    c.setup_named = {}
    run.dev_node(c, lambda _m: None)  # type: ignore[arg-type]
    assert c.calls == ["setup [2] toolchain@dev"]
    c = FakeCluster([FakeNode(0, "worker")])
    node, made, made_cluster = run.dev_node(c, lambda _m: None)  # type: ignore[arg-type]
    assert (node.index, made, made_cluster) == (1, True, False)
    assert c.calls == ["provision 1 dev {'dev': ['toolchain']}"]
    c = FakeCluster([], existed=False)
    assert run.dev_node(c, lambda _m: None)[1:] == (True, True)  # type: ignore[arg-type]


def test_made_node_removed_unless_kept_even_when_the_build_fails(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    removed: list[tuple[int, bool]] = []
    monkeypatch.setattr(run, "dev_node", lambda c, say, console=None: (FakeNode(4, "dev", "c-4"), True, False))
    monkeypatch.setattr(run, "remove_dev_node", lambda c, n, whole, say: removed.append((n.index, whole)))

    def failing(*_a: Any) -> None:
        raise run.BuildFailed("the build failed", 2)

    monkeypatch.setattr(run, "_compile_on", failing)
    req = CompileRequest(_src(tmp_path, "SConstruct"))
    with pytest.raises(run.BuildFailed) as exc:
        run.compile_sources(FakeCluster([]), req)  # type: ignore[arg-type]
    assert exc.value.exit_code == 2 and removed == [(4, False)]
    monkeypatch.setattr(run, "_compile_on", lambda *_a: None)
    req.keep = True
    result = run.compile_sources(FakeCluster([]), req)  # type: ignore[arg-type]
    assert removed == [(4, False)] and result.made_node and not result.removed_node
