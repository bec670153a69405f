"""Process-wide settings live in kx/process.py: no other library module writes the environment."""

import ast
import os
import re
from pathlib import Path

from kx import process

KX = Path(__file__).resolve().parents[1] / "kx"
WRITERS = {"setdefault", "update", "pop", "popitem", "clear", "__setitem__", "__delitem__"}


def _is_environ(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return isinstance(node, ast.Name) and node.id == "environ"


def environ_writes(tree: ast.AST) -> list:
    """Line numbers where ``tree`` sets, changes or deletes a variable of the process's environment."""
    lines = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else []
        if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        if any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets):
            lines.append(node.lineno)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, owner = node.func.attr, node.func.value
            if (method in WRITERS and _is_environ(owner)) or method in ("putenv", "unsetenv"):
                lines.append(node.lineno)
    return sorted(lines)


def test_the_scan_finds_every_way_of_writing_the_environment():
    code = """
os.environ["A"] = "1"
os.environ.setdefault("B", "2")
os.environ.update(C="3")
del os.environ["D"]
os.putenv("E", "5")
environ["F"] = "6"
env = dict(os.environ, G="7")  # a subprocess's environment: not this process's
subprocess.run(["x"], env={**os.environ, "H": "8"})
value = os.environ.get("I")
"""
    assert environ_writes(ast.parse(code)) == [2, 3, 4, 5, 6, 7]


def test_only_kx_process_writes_os_environ():
    sources = {path: path.read_text() for path in sorted(KX.rglob("*.py"))}
    writers = {
        path.relative_to(KX).as_posix(): lines
        for path, text in sources.items()
        # a module that never names environ, putenv or unsetenv cannot write: no need to parse it
        if re.search(r"environ|putenv|unsetenv", text) and (lines := environ_writes(ast.parse(text)))
    }
    assert list(writers) == ["process.py"], writers


def test_an_explicit_setting_wins_over_kx_defaults(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    process.mxnet_threads(default=1)
    process.tensorflow_log_level(3)
    process.visible_gpus(2)
    assert (os.environ["OMP_NUM_THREADS"], os.environ["TF_CPP_MIN_LOG_LEVEL"]) == ("3", "0")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    process.mxnet_threads(threads=2)  # backend.threads, asked for in the config
    assert os.environ["OMP_NUM_THREADS"] == "2"


def test_xla_cpu_devices_adds_its_flag_once_to_the_others(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    process.xla_cpu_devices(4)
    process.xla_cpu_devices(4)
    assert os.environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {process.XLA_CPU_COUNT}=4"
    monkeypatch.delenv("XLA_FLAGS")
    process.xla_cpu_devices(1)
    assert "XLA_FLAGS" not in os.environ
