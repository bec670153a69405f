"""Quiet by default: third-party chatter off the console, kept in the run's log file.

MLflow (``Creating initial MLflow database tables...``), matplotlib (``generated new fontManager``)
and TensorFlow (``Assets written to ...``) log at INFO what a user reads as trouble. The console shows
kx's own lines and other libraries' errors; the run's log file (Hydra's file handler) keeps all.
"""

import contextlib
import logging
import os
import sys
from typing import Iterator

CONSOLE_LEVEL = logging.ERROR  # a third party's lines at this level or above still reach the console


class KxOnly(logging.Filter):
    """Pass kx's records, and other loggers' at :data:`CONSOLE_LEVEL` or above."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "kx" or record.name.startswith("kx.") or record.levelno >= CONSOLE_LEVEL


def quiet_console() -> None:
    """Filter the root logger's console handlers; MLflow's records go through them once
    :func:`kx.process.quiet_libraries` has told MLflow not to print to stderr itself."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per MLflow schema migration
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and not any(isinstance(f, KxOnly) for f in handler.filters):
            handler.addFilter(KxOnly())


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """Send file descriptor 2 to the run's log file (the root logger's file handler) meanwhile: C++
    start-up lines such as TensorFlow's ``All log messages before absl::InitializeLog()`` and
    ``oneDNN custom operations are on`` are written there before any Python setting applies.
    Python's own records and exceptions are untouched (the console handler writes to stdout)."""
    files = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.FileHandler) and h.baseFilename != os.devnull
    ]
    if not files:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(files[0].baseFilename, "a", encoding="utf-8") as log_file:
            os.dup2(log_file.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
