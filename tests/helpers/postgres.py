"""A real PostgreSQL server for tests: Debian's ``postgresql``, in a temporary folder, on a free
loopback port, run as the ``postgres`` user when the tests run as root (initdb refuses root), and
stopped by its PID afterwards (SIGINT: PostgreSQL's fast shutdown)."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, Optional

from tests.conftest import free_port

DATABASE = "kx"


def bin_dir() -> Optional[Path]:
    """The newest installed PostgreSQL's programs, or None when there is none."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def _owner() -> Dict[str, str]:
    """Popen's arguments that run a program as ``postgres`` when the tests run as root."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server with an empty database ``kx``; yield its SQLAlchemy URL (psycopg 3)."""
    programs = bin_dir()
    assert programs is not None, "PostgreSQL is not installed (apt-get install postgresql)"
    folder = Path(tempfile.mkdtemp(prefix="kx-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    run = lambda *cmd: subprocess.run([str(c) for c in cmd], check=True, capture_output=True, **_owner())  # noqa: E731
    run(programs / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    server = subprocess.Popen(
        [
            str(programs / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(folder),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **_owner(),
    )
    try:
        for _ in range(300):
            ready = subprocess.run(
                [str(programs / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            )
            if ready.returncode == 0:
                break
            time.sleep(0.1)
        run(programs / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", DATABASE)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DATABASE}"
    finally:
        server.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)
