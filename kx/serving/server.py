"""An async HTTP server for one kx model: SageMaker's inference contract and TF Serving's REST routes.

- ``GET /ping``; ``POST /invocations`` with ``application/json`` (``{"instances": [...]}`` or a bare
  nested list) or ``application/x-npy``, answering ``{"predictions": [[p0, ...], ...]}``.
- ``POST /v1/models/<name>:predict`` (``{"instances": ...}`` or ``{"inputs": ...}``),
  ``GET /v1/models/<name>`` (TF Serving's status), ``GET /v1/models/<name>/metadata`` (the contract).

Concurrent requests are gathered by :class:`Batcher` into one prediction. Every bad request gets a 4xx
answer ``{"error": "<one line>"}``.
"""

import asyncio
import contextlib
import io
import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any, AsyncIterator, List, Optional, Tuple

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kx.errors import KxError
from kx.serving.config import ServeConfig
from kx.serving.model import InputError, ServedModel

JSON, NPY = "application/json", "application/x-npy"


class RequestError(Exception):
    """A bad request: an HTTP status and one line for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Batcher:
    """Gathers the images of concurrent requests into batches of at most ``max_batch`` and predicts
    them on one worker thread; a lone request waits at most ``max_wait_ms`` for company."""

    def __init__(self, model: ServedModel, max_batch: int, max_wait_ms: float) -> None:
        self.model, self.max_batch, self.max_wait = model, max_batch, max_wait_ms / 1000
        self.queue: asyncio.Queue[Tuple[np.ndarray, asyncio.Future]] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="kx-predict")
        self.carry: Optional[Tuple[np.ndarray, asyncio.Future]] = None
        self.requests = self.batches = 0  # served so far, shown by /ping

    async def predict(self, images: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((images, future))
        return await future

    def buckets(self) -> List[int]:
        """The batch sizes the model ever sees: powers of two up to ``max_batch``, and ``max_batch``."""
        sizes = [2**i for i in range(self.max_batch.bit_length()) if 2**i < self.max_batch]
        return sizes + [self.max_batch]

    def predict_padded(self, batch: np.ndarray) -> np.ndarray:
        """Predict ``batch`` padded with zeros to the next bucket size, so that engines which prepare
        a graph per input shape (MXNet, XLA) prepare a few, all at start-up (:meth:`warm_up`)."""
        size = next((b for b in self.buckets() if b >= len(batch)), len(batch))
        if size > len(batch):
            batch = np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), batch.dtype)])
        return self.model.predict_batch(batch)

    def warm_up(self) -> None:
        contract = self.model.contract
        for size in self.buckets():
            self.model.predict_batch(np.zeros((size, *contract.raw_shape), contract.raw_dtype))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            batch = np.concatenate([images for images, _ in items])
            self.requests, self.batches = self.requests + len(items), self.batches + 1
            try:
                out = await loop.run_in_executor(self.executor, self.predict_padded, batch)
            except Exception as err:  # noqa: BLE001 - the requests get the error, the server goes on
                out = err
            start = 0
            for images, future in items:
                if future.cancelled():
                    pass
                elif isinstance(out, Exception):
                    future.set_exception(out)
                else:
                    future.set_result(out[start : start + len(images)])
                start += len(images)

    async def _gather(self) -> List[Tuple[np.ndarray, asyncio.Future]]:
        """The next batch: the first waiting request, then whatever else fits and is waiting."""
        items = [self.carry or await self.queue.get()]
        self.carry = None
        if self.max_wait and self.queue.empty() and len(items[0][0]) < self.max_batch:
            await asyncio.sleep(self.max_wait)
        size = len(items[0][0])
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if size + len(item[0]) > self.max_batch:
                self.carry = item  # first in the next batch
                break
            items.append(item)
            size += len(item[0])
        return items


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413, f"request body of {declared} bytes exceeds the limit of {limit} bytes (max_body_bytes)."
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"request body exceeds the limit of {limit} bytes (max_body_bytes).")
    return bytes(body)


def decode(body: bytes, content_type: str, tf_serving: bool) -> np.ndarray:
    """The images in a request body: JSON (``{"instances"|"inputs": [...]}`` or a bare list) or .npy."""
    kind = content_type.split(";")[0].strip().lower() or JSON
    if kind == NPY and not tf_serving:
        try:
            return np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise RequestError(400, f"the body is not a .npy array ({err}).") from None
    if kind != JSON:
        allowed = JSON if tf_serving else f"{JSON} or {NPY}"
        raise RequestError(415, f"content type {kind!r} is not supported; send {allowed}.")
    try:
        doc = json.loads(body)
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
    except ValueError as err:
        raise RequestError(400, f"the images are not a regular nested list of numbers ({err}).") from None


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


class Handlers:
    """The routes' handlers for one model (served as ``name``), its batcher and limits."""

    def __init__(self, model: ServedModel, cfg: ServeConfig) -> None:
        self.model, self.cfg = model, cfg
        self.name = cfg.model_name or model.contract.name
        self.batcher = Batcher(model, cfg.max_batch, cfg.max_wait_ms)

    def other_model(self, request: Request) -> Optional[Response]:
        """A 404 answer when the TF Serving route names another model than this one."""
        asked = request.path_params["name"]
        if asked == self.name:
            return None
        return error(404, f"model {asked!r} is not served here; this server serves {self.name!r}.")

    async def predict(self, request: Request, tf_serving: bool) -> Response:
        if tf_serving and (missing := self.other_model(request)):
            return missing
        try:
            body = await read_body(request, self.cfg.max_body_bytes)
            images = self.model.check(decode(body, request.headers.get("content-type", ""), tf_serving))
        except RequestError as err:
            return error(err.status, str(err))
        except InputError as err:
            return error(400, str(err))
        try:
            probabilities = await self.batcher.predict(images)
        except Exception as err:  # noqa: BLE001 - the model failed on valid input: a 500, not a crash
            return error(500, f"the model failed on this batch: {type(err).__name__}: {err}")
        return Response(json.dumps({"predictions": probabilities.tolist()}), media_type=JSON)

    async def invocations(self, request: Request) -> Response:
        return await self.predict(request, tf_serving=False)

    async def tf_predict(self, request: Request) -> Response:
        return await self.predict(request, tf_serving=True)

    async def ping(self, request: Request) -> Response:
        counts = {"requests": self.batcher.requests, "batches": self.batcher.batches}
        return JSONResponse({"status": "ok", "model": self.name, "format": self.model.format, **counts})

    async def tf_status(self, request: Request) -> Response:
        if missing := self.other_model(request):
            return missing
        state = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        return JSONResponse(
            {"model_version_status": [{"version": str(self.model.contract.version), **state}]}
        )

    async def tf_metadata(self, request: Request) -> Response:
        if missing := self.other_model(request):
            return missing
        return JSONResponse({"model_spec": {"name": self.name, "version": str(self.model.contract.version)},
                             "format": self.model.format, "contract": asdict(self.model.contract)})  # fmt: skip

    async def http_error(self, request: Request, exc: Any) -> Response:
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.batcher.executor, self.batcher.warm_up)  # before /ping answers
        task = asyncio.create_task(self.batcher.run())
        yield
        task.cancel()


def create_app(model: ServedModel, cfg: ServeConfig) -> Starlette:
    """The Starlette app serving ``model`` under ``cfg``'s name and limits."""
    h = Handlers(model, cfg)
    routes = [
        Route("/ping", h.ping, methods=["GET"]),
        Route("/invocations", h.invocations, methods=["POST"]),
        Route("/v1/models/{name}:predict", h.tf_predict, methods=["POST"]),
        Route("/v1/models/{name}/metadata", h.tf_metadata, methods=["GET"]),
        Route("/v1/models/{name}", h.tf_status, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: h.http_error}, lifespan=h.lifespan)


def serve(model: ServedModel, cfg: ServeConfig) -> None:
    """Serve ``model`` until SIGINT/SIGTERM; the address is printed once the socket is bound."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError as err:
        raise KxError(
            f"Cannot listen on {cfg.host}:{cfg.port} ({err.strerror}); choose another port=."
        ) from None
    host, port = sock.getsockname()[:2]
    name = cfg.model_name or model.contract.name
    print(f"kx: serving {name} ({model.contract.backend}, {model.format}) at http://{host}:{port} "
          f"(POST /invocations, /v1/models/{name}:predict)", file=sys.stderr, flush=True)  # fmt: skip
    config = uvicorn.Config(create_app(model, cfg), log_level=cfg.log_level, access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
