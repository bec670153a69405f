"""kx's layers (the import-linter contract in pyproject.toml) and where its own imports sit."""

import ast
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

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


# Imports of light kx modules inside functions that predate this check (issue 23): each should move to
# its module's top. The list only shrinks: an import added inside a function must name a heavy module.
KNOWN_NEEDLESS = {
    ("kx/backends/__init__.py", "kx.backends.registry"),
    ("kx/backends/keras3.py", "kx.backends.keras_multi_worker"),
    ("kx/backends/registry.py", "kx.backends"),
    ("kx/config/__init__.py", "kx.config.errors"),
    ("kx/config/validate.py", "kx.backends.keras_steps"),
    ("kx/config/validate.py", "kx.backends.precision"),
    ("kx/config/validate.py", "kx.backends.registry"),
    ("kx/config/validate.py", "kx.data.registry"),
    ("kx/data/__init__.py", "kx.data.channels"),
    ("kx/data/__init__.py", "kx.data.registry"),
    ("kx/data/registry.py", "kx.data"),
    ("kx/sagemaker/launch_cli.py", "kx.sagemaker.job_watch"),
    ("kx/sagemaker/launch_cli.py", "kx.sagemaker.tuning_jobs"),
    ("kx/sagemaker/job_request.py", "kx.data.channels"),
    ("kx/sagemaker/job_request.py", "kx.data.registry"),
    ("kx/sagemaker/job_request.py", "kx.sagemaker.script_mode"),
    ("kx/sagemaker/tuning_request.py", "kx.sagemaker.job_request"),
    ("kx/sagemaker/tuning_request.py", "kx.sagemaker.validate"),
    ("kx/sagemaker/tuning_jobs.py", "kx.sagemaker.job_request"),
    ("kx/sagemaker/tuning_jobs.py", "kx.sagemaker.tuning_request"),
    ("kx/sagemaker/tuning_jobs.py", "kx.sagemaker.tuning_rehearsal"),
    ("kx/sagemaker/tuning_jobs.py", "kx.sagemaker.tuning_results"),
    ("kx/sagemaker/tuning_rehearsal.py", "kx.sagemaker.rehearsal"),
    ("kx/sagemaker/tuning_results.py", "kx.sagemaker.job_tracking"),
    ("kx/sagemaker/tuning_results.py", "kx.sagemaker.job_watch"),
    ("kx/sagemaker/tuning_results.py", "kx.sagemaker.script_mode"),
    ("kx/sagemaker/tuning_results.py", "kx.sweep.report"),
    ("kx/sagemaker/tuning_results.py", "kx.tracking"),
    ("kx/sagemaker/tuning_results.py", "kx.tracking.mlflow_tracker"),
    ("kx/serving/launch_cli.py", "kx.sagemaker.settings"),
    ("kx/serving/launch_cli.py", "kx.serving.config"),
    ("kx/serving/launch_cli.py", "kx.serving.deploy"),
    ("kx/serving/launch_cli.py", "kx.serving.model"),
    ("kx/serving/launch_cli.py", "kx.serving.predict"),
    ("kx/serving/launch_cli.py", "kx.serving.source"),
    ("kx/serving/deploy.py", "kx.serving.source"),
    ("kx/serving/deploy.py", "kx.tracking.mlflow_tracker"),
    ("kx/serving/mlflow_model.py", "kx.serving.model"),
    ("kx/serving/source.py", "kx.tracking.mlflow_tracker"),
    ("kx/sweep/runs.py", "kx.tracking.mlflow_tracker"),
    ("kx/sweep/trial.py", "kx.sweep.optuna_space"),
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
                if (where, target) not in KNOWN_NEEDLESS:
                    needless.append(
                        f"{where}:{line} imports {target} inside a function: import it at the top"
                    )
    assert not needless, "\n".join(sorted(set(needless)))
