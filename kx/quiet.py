"""Quiet by default: third-party chatter off the console, kept in the run's log file.

MLflow (``Creating initial MLflow database tables...``), matplotlib (``generated new fontManager``)
and TensorFlow (``Assets written to ...``) log at INFO what a user reads as trouble. The console shows
kx's own lines and other libraries' errors; the run's log file (Hydra's file handler) keeps all.
"""

import logging
import os

CONSOLE_LEVEL = logging.ERROR  # a third party's lines at this level or above still reach the console


class KxOnly(logging.Filter):
    """Pass kx's records, and other loggers' at :data:`CONSOLE_LEVEL` or above."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "kx" or record.name.startswith("kx.") or record.levelno >= CONSOLE_LEVEL


def quiet_console() -> None:
    """Filter the root logger's console handlers and send MLflow's records through them (MLflow
    otherwise prints to stderr itself). Call before MLflow is imported."""
    os.environ.setdefault(
        "MLFLOW_CONFIGURE_LOGGING", "false"
    )  # MLflow's records go through the root's handlers
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per MLflow schema migration, ~70
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and not any(isinstance(f, KxOnly) for f in handler.filters):
            handler.addFilter(KxOnly())
