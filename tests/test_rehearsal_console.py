"""A rehearsal's console shows the job's own lines; the toolkit's pip, environment and hyperparameter
output goes to the job's log file only."""

import subprocess
import sys

from kx.sagemaker import rehearsal

TOOLKIT = [
    "Requirement already satisfied: numpy<2 in /usr/lib/python3/dist-packages (1.26.4)\n",
    "2026-12-03 23:00:01,000 sagemaker-training-toolkit ERROR    Failed to parse hyperparameter "
    "model.dense_units value 64 to Json.\n",
    'SM_HOSTS=["algo-1"]\n',
    "SM_CURRENT_HOST=algo-1\n",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
]
KX = [
    "[2026-12-03 23:00:05,000][kx][INFO] - epoch=1 loss=1.4872 acc=0.5292 val_loss=0.4430 val_acc=0.8830\n",
    "kx: error: dataset.path=nowhere.npz: no such file\n",
]


def test_the_console_shows_the_scripts_lines_and_the_log_file_keeps_everything(tmp_path, capsys):
    lines = [TOOLKIT[0], KX[0], *TOOLKIT[1:], KX[1]]
    script = f"import sys; sys.stdout.writelines({lines!r})"
    procs = {"algo-1": subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)}
    logs = {}
    log_file = tmp_path / "rehearsal.log"
    assert rehearsal._wait_all(procs, logs, {"algo-1": log_file}) == []
    assert capsys.readouterr().out.splitlines(keepends=True) == KX
    assert log_file.read_text() == "".join(lines)
