"""The one exception family kx reports as a single clear paragraph instead of a traceback."""

from typing import Optional

# the top-level modules each of pyproject.toml's extras installs, for "pip install" hints
EXTRAS = {
    "boto3": "sagemaker",
    "botocore": "sagemaker",
    "sagemaker": "sagemaker",
    "sagemaker_training": "sagemaker",
    "psutil": "sagemaker",
    "regex": "sagemaker",
    "tensorflow": "tensorflow",
    "keras": "tensorflow",
    "mxnet": "mxnet",
    "jax": "jax",
    "torch": "torch",
    "tensorflow_datasets": "tfds",
}


class KxError(Exception):
    """A problem the user can fix; the message names the bad value and what is allowed."""


def one_line(err: BaseException) -> str:
    """An error's message as one line: its unindented lines joined (Hydra's details are indented)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and not line[:1].isspace()]
    return " ".join(
        line for line in lines if not line.startswith("Set the environment variable HYDRA_FULL_ERROR")
    )


def missing_extra(err: ModuleNotFoundError, command: str) -> Optional[str]:
    """``launch.py needs boto3 (not installed): pip install -e ".[sagemaker]"``, for a module one of
    kx's extras installs; None for any other module (a bug to report, with its traceback)."""
    module = (err.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    if extra is None:
        return None
    return f'{command} needs {module}, which is not installed: pip install -e ".[{extra}]"'
