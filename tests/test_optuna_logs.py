"""Optuna's verbosity is set in one place (kx.process.quiet_optuna_logs)."""

from pathlib import Path

import optuna

from kx.process import quiet_optuna_logs

KX = Path(__file__).resolve().parents[1] / "kx"


def test_optuna_logs_warnings_only_and_kx_sets_it_nowhere_else():
    optuna.logging.set_verbosity(optuna.logging.INFO)
    quiet_optuna_logs()
    assert optuna.logging.get_verbosity() == optuna.logging.WARNING
    setters = [p.relative_to(KX).as_posix() for p in KX.rglob("*.py") if "set_verbosity(" in p.read_text()]
    assert setters == ["process.py"]
