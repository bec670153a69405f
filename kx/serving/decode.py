"""Request bodies to image arrays, refusing hostile ones with a status and one line.

A body arrives within a deadline or gets 408; a client that leaves mid-body is :class:`Disconnected`.
JSON nested too deep, a ``.npy`` header that claims more (or less) data than the body holds, or an
object dtype is a 400 before anything large is allocated.
"""

import asyncio
import io
import json
import math
import time
from typing import Tuple

import numpy as np
from starlette.requests import ClientDisconnect, Request

JSON, NPY = "application/json", "application/x-npy"
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class RequestError(Exception):
    """A bad request: an HTTP status and one line for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> Tuple[type, Tuple[int, str]]:  # raised in a worker process, re-raised here
        return RequestError, (self.status, str(self))


class Disconnected(Exception):
    """The client went away before its body was read; there is nobody to answer."""


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body: 413 as soon as it passes ``limit`` bytes, 408 unless whole within ``timeout_s``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413, f"request body of {declared} bytes exceeds the limit of {limit} bytes (max_body_bytes)."
        )
    body, chunks, deadline = bytearray(), request.stream().__aiter__(), time.monotonic() + timeout_s
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), max(deadline - time.monotonic(), 0))
        except StopAsyncIteration:
            return bytes(body)
        except asyncio.TimeoutError:
            raise RequestError(
                408,
                f"the request body did not arrive within {timeout_s:g} s "
                f"(read_timeout_s); {len(body)} bytes came.",
            ) from None
        except ClientDisconnect:
            raise Disconnected() from None
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"request body exceeds the limit of {limit} bytes (max_body_bytes).")


def decode(body: bytes, content_type: str, tf_serving: bool) -> np.ndarray:
    """The images in a request body: JSON (``{"instances"|"inputs": [...]}`` or a bare list) or .npy."""
    kind = content_type.split(";")[0].strip().lower() or JSON
    if kind == NPY and not tf_serving:
        return load_npy(body)
    if kind != JSON:
        allowed = JSON if tf_serving else f"{JSON} or {NPY}"
        raise RequestError(415, f"content type {kind!r} is not supported; send {allowed}.")
    try:
        doc = json.loads(body)
    except RecursionError:
        raise RequestError(400, "the JSON body is nested too deeply to be a batch of images.") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestError(400, f"the body is not valid JSON ({err}).") from None
    if isinstance(doc, dict):
        keys = [k for k in ("instances", "inputs") if k in doc]
        if len(keys) != 1:
            raise RequestError(
                400,
                f"a JSON object body needs exactly one of 'instances' or 'inputs'; got keys {sorted(doc)}.",
            )
        doc = doc[keys[0]]
    if not isinstance(doc, list):
        raise RequestError(400, f"expected a list of images, got JSON {type(doc).__name__}.")
    try:
        return np.asarray(doc)
    except (ValueError, TypeError, RecursionError) as err:
        raise RequestError(400, f"the images are not a regular nested list of numbers ({err}).") from None


def npy_header(stream: io.BytesIO) -> Tuple[Tuple[int, ...], bool, np.dtype]:
    """The shape, Fortran order and dtype a ``.npy`` header declares (numpy's own parser, size-capped)."""
    version = np.lib.format.read_magic(stream)
    if version not in _NPY_HEADERS:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported; send 1.0 or 2.0")
    return _NPY_HEADERS[version](stream)


def load_npy(body: bytes) -> np.ndarray:
    """A ``.npy`` body as an array, after checking that its header describes exactly the bytes sent."""
    stream = io.BytesIO(body)
    try:
        shape, fortran, dtype = npy_header(stream)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as err:
        raise RequestError(400, f"the body is not a .npy array ({err}).") from None
    if dtype.hasobject or dtype.itemsize == 0:
        raise RequestError(400, f"a .npy array of dtype {dtype} holds no numbers; send numeric images.")
    declared, sent = math.prod(shape) * dtype.itemsize, len(body) - stream.tell()
    if declared != sent:
        raise RequestError(
            400,
            f"the .npy header declares shape {shape} of {dtype} ({declared} bytes) but "
            f"the body holds {sent} bytes of data.",
        )
    flat = np.frombuffer(body, dtype=dtype, count=math.prod(shape), offset=stream.tell())
    return flat.reshape(shape, order="F" if fortran else "C")
