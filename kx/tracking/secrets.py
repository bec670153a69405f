"""Credentials in a URI (``https://user:token@host``) never reach MLflow params, tags or messages."""

import re

_USERINFO = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^/\s]+@")


def redact(text: str) -> str:
    """``text`` with the user:password part of every URI in it replaced by ``***``."""
    return _USERINFO.sub(r"\1***@", text)


def without_credentials(uri: str) -> str:
    """``uri`` without its user:password part (for requests that need none, like ``/health``)."""
    return _USERINFO.sub(r"\1", uri)
