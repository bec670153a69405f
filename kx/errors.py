"""The one exception family kx reports as a single clear paragraph instead of a traceback."""


class KxError(Exception):
    """A problem the user can fix; the message names the bad value and what is allowed."""
