"""kx's layers (the import-linter contract in pyproject.toml) and where its own imports sit."""

import ast
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import grimp

ROOT = Path(__file__).resolve().parents[1]
# Third-party packages slow to import: a kx module that imports one at its top may be imported
# inside a function, so that `train.py --help` and `--cfg job` stay fast.
HEAVY = {
    "mlflow",
    "optuna",
    "sagemaker",
    "boto3",
    "botocore",
    "tensorflow",
    "keras",
    "mxnet",
    "torch",
    "jax",
    "matplotlib",
    "sklearn",
    "starlette",
    "uvicorn",
    "tensorflow_datasets",
    "moto",
    "PIL",
}


def test_the_layer_contract_holds():
    """`lint-imports` reads pyproject.toml; it counts imports inside functions too."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@lru_cache(maxsize=None)
def _modules() -> Dict[str, Path]:
    paths = sorted((ROOT / "kx").rglob("*.py"))
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p for p in paths}


def _imports(path: Path, module: str) -> Iterator[Tuple[str, bool, int]]:
    """(imported module, inside a function, line) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST, in_function: bool) -> Iterator[Tuple[str, bool, int]]:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                yield from ((alias.name, in_function, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - child.level + 1] if child.level else []
                target = ".".join(base + ([child.module] if child.module else []))
                submodules = [f"{target}.{alias.name}" for alias in child.names]
                named = [sub for sub in submodules if sub in _modules()] or [target]
                yield from ((module, in_function, child.lineno) for module in named)
            else:
                yield from visit(child, inside)

    yield from visit(tree, False)


@lru_cache(maxsize=None)
def _heavy_at_import(module: str) -> bool:
    """Whether importing ``module`` imports a heavy third-party package (through kx's top-level imports)."""
    modules = _modules()
    seen: Set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # its packages' __init__
        for target, in_function, _ in _imports(modules[name], name):
            if in_function:
                continue
            if target.split(".")[0] in HEAVY:
                return True
            todo.append(target)
    return False


def test_kx_imports_itself_at_module_top_unless_for_speed():
    """An import of a kx module inside a function is there to keep a heavy package unimported, never to
    hide a circle: every such import names a module whose import pulls in one of HEAVY."""
    modules = _modules()
    needless: List[str] = []
    for name, path in modules.items():
        for target, in_function, line in _imports(path, name):
            if in_function and target in modules and not _heavy_at_import(target):
                where = str(path.relative_to(ROOT))
                needless.append(f"{where}:{line} imports {target} inside a function: import it at the top")
    assert not needless, "\n".join(sorted(set(needless)))


def _part(module: str) -> str:
    """The part of kx that ``module`` belongs to: a subpackage or a top-level module."""
    return ".".join(module.split(".")[:2])


def _cycle(edges: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle of the directed graph ``edges`` (its first node repeated at the end), or None."""
    done: Set[str] = set()

    def walk(node: str, path: List[str]) -> Optional[List[str]]:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        for nxt in sorted(edges.get(node, ())):
            found = walk(nxt, path + [node])
            if found:
                return found
        done.add(node)
        return None

    return next(filter(None, (walk(node, []) for node in sorted(edges))), None)


def test_a_cycle_is_found_and_named():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]


def test_no_circle_between_kx_packages():
    """kx's subpackages and top-level modules import one another one way only, counting the imports
    inside functions (grimp, import-linter's engine, reads every import statement)."""
    graph = grimp.build_graph("kx", cache_dir=None)
    edges: Dict[str, Set[str]] = {}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if _part(module) != _part(imported):
                edges.setdefault(_part(module), set()).add(_part(imported))
    cycle = _cycle(edges)
    if cycle:
        steps = []
        for importer, imported in zip(cycle, cycle[1:]):
            chain = graph.find_shortest_chain(importer=importer, imported=imported, as_packages=True)
            steps.append(f"{importer} -> {imported} (through {' -> '.join(chain or ())})")
        raise AssertionError("kx's packages import one another in a circle:\n" + "\n".join(steps))
