"""The one exception family kx reports as a single clear paragraph instead of a traceback."""


class KxError(Exception):
    """A problem the user can fix; the message names the bad value and what is allowed."""


def one_line(err: BaseException) -> str:
    """An error's message as one line: its unindented lines joined (Hydra's details are indented)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and not line[:1].isspace()]
    return " ".join(
        line for line in lines if not line.startswith("Set the environment variable HYDRA_FULL_ERROR")
    )
