"""An async HTTP server for one kx model: SageMaker's inference contract and TF Serving's REST routes.

- ``GET /ping``; ``POST /invocations`` with ``application/json`` (``{"instances": [...]}`` or a bare
  nested list) or ``application/x-npy``, answering ``{"predictions": [[p0, ...], ...]}``.
- ``POST /v1/models/<name>:predict`` (``{"instances": ...}`` or ``{"inputs": ...}``),
  ``GET /v1/models/<name>`` (TF Serving's status), ``GET /v1/models/<name>/metadata`` (the contract).

Concurrent requests are gathered by :class:`Batcher` into one prediction, a large one split into
``max_batch`` pieces. Every bad request gets a 4xx answer ``{"error": "<one line>"}``. Checks and
predictions run on worker threads, and large bodies are parsed (large answers encoded) in worker
processes: the event loop only moves bytes, so ``/ping`` answers while large requests are served.
"""

import asyncio
import contextlib
import json
import logging
import multiprocessing
import socket
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from typing import Any, AsyncIterator, Callable, List, Optional, Tuple

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kx.errors import KxError
from kx.serving.config import ServeConfig
from kx.serving.decode import JSON, Disconnected, RequestError, decode, read_body
from kx.serving.model import InputError, ServedModel

LARGE = 256 * 1024  # bodies (and answers) from this size are parsed (encoded) in a worker process
log = logging.getLogger("uvicorn.error")  # uvicorn configures it with log_level


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
        """Probabilities for ``images``, queued in pieces of at most ``max_batch``."""
        loop = asyncio.get_running_loop()
        self.requests += 1
        futures = []
        for start in range(0, len(images), self.max_batch):
            futures.append(loop.create_future())
            await self.queue.put((images[start : start + self.max_batch], futures[-1]))
        parts = await asyncio.gather(*futures)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

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
            self.batches += 1
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


def encode(probabilities: np.ndarray) -> str:
    return json.dumps({"predictions": probabilities.tolist()})


def error(status: int, message: str) -> JSONResponse:
    """A one-line JSON error; after a stalled body (408) the connection is closed, not reused."""
    headers = {"Connection": "close"} if status == 408 else None
    return JSONResponse({"error": " ".join(message.split())}, status_code=status, headers=headers)


class Handlers:
    """The routes' handlers for one model (served as ``name``), its batcher and limits."""

    def __init__(self, model: ServedModel, cfg: ServeConfig) -> None:
        self.model, self.cfg = model, cfg
        self.name = cfg.model_name or model.contract.name
        self.batcher = Batcher(model, cfg.max_batch, cfg.max_wait_ms)
        self.workers: Optional[ProcessPoolExecutor] = None  # started with the first large request

    def other_model(self, request: Request) -> Optional[Response]:
        """A 404 answer when the TF Serving route names another model than this one."""
        asked = request.path_params["name"]
        if asked == self.name:
            return None
        return error(404, f"model {asked!r} is not served here; this server serves {self.name!r}.")

    async def images(self, body: bytes, content_type: str, tf_serving: bool) -> np.ndarray:
        """The request's checked images; a large body is parsed in a worker process, where parsing
        cannot hold this process's GIL (and with it ``/ping``) for long."""
        try:
            if len(body) < LARGE:
                images = decode(body, content_type, tf_serving)
            else:
                images = await self.offload(decode, body, content_type, tf_serving)
        except MemoryError:
            raise RequestError(413, "the request's images do not fit in this server's memory.") from None
        return await asyncio.get_running_loop().run_in_executor(None, self.model.check, images)

    async def offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker process; a pool whose worker died is replaced for later requests."""
        if self.workers is None:
            self.workers = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
        try:
            return await asyncio.get_running_loop().run_in_executor(self.workers, fn, *args)
        except BrokenProcessPool:
            self.workers = None
            raise RequestError(
                503, "the worker process for this request died (out of memory?); retry."
            ) from None

    async def predict(self, request: Request, tf_serving: bool) -> Response:
        if tf_serving and (missing := self.other_model(request)):
            return missing
        try:
            body = await read_body(request, self.cfg.max_body_bytes, self.cfg.read_timeout_s)
            images = await self.images(body, request.headers.get("content-type", ""), tf_serving)
        except Disconnected:
            log.debug(
                "%s %s: the client disconnected before sending its body", request.method, request.url.path
            )
            return Response(status_code=400)  # nobody reads it
        except RequestError as err:
            return error(err.status, str(err))
        except InputError as err:
            return error(400, str(err))
        try:
            probabilities = await self.batcher.predict(images)
        except Exception as err:  # noqa: BLE001 - the model failed on valid input: a 500, not a crash
            return error(500, f"the model failed on this batch: {type(err).__name__}: {err}")
        large = probabilities.size * 12 >= LARGE  # about 12 bytes of JSON per probability
        try:
            text = await self.offload(encode, probabilities) if large else encode(probabilities)
        except RequestError as err:
            return error(err.status, str(err))
        return Response(text, media_type=JSON)

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
        return JSONResponse(
            {
                "model_spec": {"name": self.name, "version": str(self.model.contract.version)},
                "format": self.model.format,
                "contract": asdict(self.model.contract),
            }
        )

    async def http_error(self, request: Request, exc: Any) -> Response:
        return error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    async def server_error(self, request: Request, exc: Exception) -> Response:
        """A fault of this server's own still answers in JSON (uvicorn logs the traceback)."""
        return error(500, f"{request.method} {request.url.path}: internal error ({type(exc).__name__}).")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.batcher.executor, self.batcher.warm_up)  # before /ping answers
        task = asyncio.create_task(self.batcher.run())
        yield
        task.cancel()
        if self.workers is not None:
            self.workers.shutdown(cancel_futures=True)


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
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: h.http_error, Exception: h.server_error},
        lifespan=h.lifespan,
    )


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
    print(
        f"kx: serving {name} ({model.contract.backend}, {model.format}) at http://{host}:{port} "
        f"(POST /invocations, /v1/models/{name}:predict)",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(create_app(model, cfg), log_level=cfg.log_level, access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
