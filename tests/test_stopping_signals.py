"""The handler that stops training on a signal sets flags only; its line is logged once the loop is out."""

import logging
import os
import signal

from kx.backends.monitor import EpochMonitor
from kx.stopping import stop_on_signals


def test_a_signal_logs_nothing_inside_the_handler_and_one_line_once_the_loop_is_out(caplog):
    """A signal can land while a log handler is writing; logging from the handler then re-enters
    that write (Python's 'reentrant call' error, printed as a traceback)."""
    monitor = EpochMonitor()
    with caplog.at_level(logging.WARNING, logger="kx"), stop_on_signals(monitor) as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert monitor.interrupted and signals.received == "SIGTERM"
        assert caplog.records == []
    assert [r.getMessage() for r in caplog.records] == [
        "SIGTERM received: stopped after the batch; the 0 completed epochs are kept"
    ]
