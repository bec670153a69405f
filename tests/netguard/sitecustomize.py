"""Loopback only: refuse and report every connection or name lookup beyond this machine.

The test suite puts this folder on PYTHONPATH, so every Python process it starts (train.py,
launch.py, MLflow and moto servers) and pytest itself load it. An attempt to reach another address
is printed to stderr as `net_guard: blocked ...` and fails with an OSError in that process;
tests assert that no such line appears.
"""

import ipaddress
import socket
import sys

_connect = socket.socket.connect
_getaddrinfo = socket.getaddrinfo


def _loopback(host: object) -> bool:
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return str(host) == "localhost"


def guarded_connect(self: socket.socket, address: object) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(host):
        print(f"net_guard: blocked {address}", file=sys.stderr, flush=True)
        raise OSError(f"net_guard: connection to {address} refused")
    return _connect(self, address)


def guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host is not None and not _loopback(host):
        print(f"net_guard: blocked lookup {host}", file=sys.stderr, flush=True)
        raise socket.gaierror(f"net_guard: lookup of {host} refused")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = guarded_connect  # type: ignore[method-assign]
socket.getaddrinfo = guarded_getaddrinfo
