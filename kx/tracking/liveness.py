"""Which process owns an MLflow run, and closing the runs whose process is gone.

Every run kx creates is tagged with its host and process (``kx.host``, ``kx.pid`` and the
process's start time, so a reused pid is not mistaken for the owner). A run killed with
``kill -9`` (or lost with its machine) stays RUNNING in MLflow; the next time kx opens that store
on the same host it marks such runs KILLED. Runs of other hosts are left alone: their processes
cannot be seen from here. Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import logging
import os
import socket
from typing import Any, Dict, List, Optional

log = logging.getLogger("kx")

HOST_TAG, PID_TAG, START_TAG = "kx.host", "kx.pid", "kx.process_start"
KILLED_TAG = "kx.killed"  # why kx marked the run KILLED


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or "" where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_tags(pid: Optional[int] = None) -> Dict[str, str]:
    """Tags naming this process (or ``pid``) as a run's owner; call it for runs kx.tracking does not start."""
    pid = os.getpid() if pid is None else pid
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), START_TAG: process_start(pid)}


def owner_alive(tags: Dict[str, str]) -> Optional[bool]:
    """True/False when the run's owner is a process on this host; None when that cannot be told."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return None
    pid = int(tags[PID_TAG])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    started = tags.get(START_TAG)
    return not started or process_start(pid) in ("", started)


def close_orphaned_runs(run: Any) -> List[str]:
    """Mark KILLED every RUNNING run in ``run``'s store whose owning process on this host is gone;
    return their ids. A store that cannot be searched is reported once and left as it is."""
    try:
        return _close_orphaned_runs(run.client)
    except Exception as err:  # noqa: BLE001 - housekeeping must not stop a run
        log.warning(
            "MLflow: could not look for runs left RUNNING by ended processes (%s: %s)",
            type(err).__name__,
            err,
        )
        return []


def _close_orphaned_runs(client: Any) -> List[str]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    running = client.search_runs(
        experiments,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{socket.gethostname()}'",
    )
    closed = []
    for run in running:
        if owner_alive(run.data.tags) is False:
            client.set_tag(
                run.info.run_id, "kx.killed", f"its process {run.data.tags[PID_TAG]} ended without closing it"
            )
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    if closed:
        log.info("MLflow: marked %d run(s) KILLED whose process is gone: %s", len(closed), ", ".join(closed))
    return closed
