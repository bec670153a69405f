"""Every command in README.md runs as written after its set-up command (`source .venv/bin/activate`).

Training commands run on tiny settings (overrides appended; Hydra's last value wins), the SageMaker
dry run with the README's own `export` line; commands that need AWS, a server or an hour (status,
logs, submit, `mlflow ui`, benchmarks, CI itself) are checked to name an existing program and file.
"""

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import List, Tuple

import pytest

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.slow

SETUP = "source .venv/bin/activate"
TINY = ["train.epochs=1", "dataset.limit=256"]


def readme_commands() -> List[str]:
    """The command lines of README.md's bash blocks, comments stripped."""
    text = (PROJECT_DIR / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [re.sub(r"\s+#.*$", "", line).strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line]


COMMANDS = readme_commands()
EXPORT = next(c for c in COMMANDS if c.startswith("export KX_SAGEMAKER_ROLE="))
TRAIN = [c for c in COMMANDS if c.startswith("python train.py")]
EXAMPLES = [c for c in COMMANDS if c.startswith("python examples/")]  # they write the examples' inputs
DRY_RUN = [c for c in COMMANDS if c.startswith("python launch.py") and c.endswith("--dry-run")]


def in_venv(command: str, cwd: Path = PROJECT_DIR) -> subprocess.CompletedProcess:
    """``command`` in bash after the README's set-up command, from the project folder."""
    script = f"cd {shlex.quote(str(PROJECT_DIR))} && {SETUP} && cd {shlex.quote(str(cwd))} && {command}"
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600)


def test_the_readme_names_its_set_up_and_its_commands():
    assert SETUP in COMMANDS and len(TRAIN) >= 6 and DRY_RUN
    assert "bash .ci/run" in COMMANDS  # the test command is CI's own script


def tiny(command: str) -> List[str]:
    """The settings appended to a training command (its output folder and store come after them)."""
    return [*TINY, "sweep.budget.trials=2"] if "sweep=" in command else TINY  # two trials of its budget


def same_run(command: str) -> Tuple[str, ...]:
    """What a training command runs once its tiny settings are appended (Hydra's last value wins)."""
    words = shlex.split(command)[2:]
    settings = dict(w.split("=", 1) for w in [*words, *tiny(command)] if "=" in w)
    settings.pop("hydra.run.dir", None)  # the test's own folder replaces it
    return (*sorted(w for w in words if "=" not in w), *sorted(f"{k}={v}" for k, v in settings.items()))


RUNS = {same_run(c): c for c in reversed(TRAIN)}  # the first of commands that run the same
ALIKE = [c for c in TRAIN if RUNS[same_run(c)] != c]


@pytest.mark.parametrize("command", [c for c in TRAIN if c not in ALIKE])
def test_train_commands_run_as_written(command, tmp_path):
    folder = "hydra.sweep.dir" if " -m " in command else "hydra.run.dir"
    extra = [
        *tiny(command),
        f"{folder}={tmp_path / 'out'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    for example in EXAMPLES if "dataset.path=" in command else []:
        assert in_venv(example.replace("examples/", f"{PROJECT_DIR}/examples/", 1), tmp_path).returncode == 0
    proc = in_venv(
        f"{command.replace('train.py', str(PROJECT_DIR / 'train.py'), 1)} {shlex.join(extra)}", tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    if "--help" in command:
        assert "backend: jax, mxnet, tensorflow, torch" in proc.stdout and "schema/" not in proc.stdout
    elif "--cfg" not in command:
        assert list((tmp_path / "out").rglob("metrics.json")), proc.stdout[-2000:]


@pytest.mark.parametrize("command", ALIKE)
def test_train_commands_that_run_like_another_start_as_written(command, check_train):
    """A command whose tiny run is another's (they differ in epochs or data size only) is checked as
    train.py checks a command line before it trains; the other one trains."""
    assert check_train(*shlex.split(command)[2:]).returncode == 0


def accuracy_claims() -> List[Tuple[str, float]]:
    """The examples README.md states an accuracy for (``# ... val_acc >= 0.95``), with that accuracy;
    the full-size default run (minutes) left out."""
    text = (PROJECT_DIR / "README.md").read_text()
    claims = re.findall(r"^(python train\.py .+?)\s+#.*val_acc >= ([0-9.]+)", text, flags=re.M)
    return [(command, float(value)) for command, value in claims if " dataset=" in command]


@pytest.mark.parametrize("command,accuracy", accuracy_claims())
def test_examples_reach_the_accuracy_the_readme_states(command, accuracy, tmp_path):
    for example in EXAMPLES if "dataset.path=" in command else []:
        assert in_venv(example.replace("examples/", f"{PROJECT_DIR}/examples/", 1), tmp_path).returncode == 0
    extra = ["hydra.run.dir=out", "tracking.enabled=false"]
    proc = in_venv(
        f"{command.replace('train.py', str(PROJECT_DIR / 'train.py'), 1)} {shlex.join(extra)}", tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["model_val_acc"] >= accuracy, metrics["history"]
    assert "chance level" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", DRY_RUN)
def test_sagemaker_dry_run_runs_as_written(command, tmp_path):
    proc = in_venv(f"{EXPORT} && {command}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"RoleArn": "arn:aws:iam::111122223333:role/YOUR_SAGEMAKER_ROLE"' in proc.stdout


def test_every_other_command_names_an_existing_program_and_file():
    for command in COMMANDS:
        words = shlex.split(command)
        if words[0] in ("sudo", "source", "export", "python3"):
            continue  # set-up commands: CI runs them (.ci/run)
        program = shutil.which(words[0], path=str(PROJECT_DIR / ".venv" / "bin")) or shutil.which(words[0])
        assert program, command
        scripts = [w for w in words[1:3] if w.endswith((".py", "/run")) or w.startswith(".ci/")]
        assert all((PROJECT_DIR / w).is_file() for w in scripts), command


def test_on_a_terminal_epoch_lines_are_not_glued_to_the_progress_bar(tmp_path):
    import os
    import pty
    import sys

    leader, follower = pty.openpty()
    cmd = [
        sys.executable,
        str(PROJECT_DIR / "train.py"),
        "model=mlp",
        "dataset=digits",
        "train.epochs=2",
        "tracking.enabled=false",
        "hydra.run.dir=run",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: train.py ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=300) == 0
    screen = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
    assert "ms/step" in screen  # Keras's progress bar was shown
    assert screen.count("] - epoch=") == 2
    assert all(line.startswith("[") for line in screen.split("\n") if "] - epoch=" in line)
