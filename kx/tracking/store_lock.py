"""Processes that open a new SQLite store at once would each create (or migrate) its tables and may
leave it broken (MLflow's migrations stop half-way); kx's processes take turns with a lock on the file.
Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import contextlib
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def sqlite_turn(url: str) -> Iterator[None]:
    """Hold an exclusive lock on ``url``'s SQLite file (created empty if need be) while the block
    runs; other URLs pass through."""
    path = url.split(":///", 1)[1].split("?", 1)[0] if url.startswith("sqlite:///") else ""
    if not path or path.startswith(":memory:"):
        yield
        return
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as store:
        fcntl.flock(store, fcntl.LOCK_EX)  # released when the file closes
        yield
