"""The serving settings (``launch.py serve MODEL key=value ...``), a structured config checked by OmegaConf."""

from dataclasses import dataclass
from typing import List, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from kx.errors import KxError


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # 0.0.0.0 serves other machines too
    port: int = 8080  # SageMaker's serving port; 0 picks a free one
    max_batch: int = 64  # concurrent requests are gathered into one prediction of at most this many images
    max_wait_ms: float = 2.0  # how long the first request of a batch waits for others
    max_body_bytes: int = 6 * 1024 * 1024  # larger requests get 413 (SageMaker's own limit is 6 MB)
    read_timeout_s: float = 60.0  # a request whose body takes longer gets 408 (slow or stalled clients)
    model_name: Optional[str] = None  # the name in /v1/models/<name>; None: the export's name
    format: Optional[str] = None  # saved_model | mxnet | keras; None: the first export that loads here
    log_level: str = "warning"  # uvicorn's


def parse(overrides: List[str]) -> ServeConfig:
    """``key=value`` overrides on the defaults, type-checked; bad ones raise one :class:`KxError` line."""
    base = OmegaConf.structured(ServeConfig)
    for item in overrides:
        if "=" not in item:
            raise KxError(
                f"{item!r} is not a serving setting; use key=value with keys {', '.join(base.keys())}."
            )
    try:
        cfg = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        raise KxError(
            f"Invalid serving setting: {str(err).splitlines()[0]} (keys: {', '.join(base.keys())})."
        ) from None
    checks = {"port": (0, 65535), "max_batch": (1, 65536), "max_body_bytes": (1, 2**31)}
    for key, (low, high) in checks.items():
        if not low <= cfg[key] <= high:
            raise KxError(f"{key}={cfg[key]} is out of range: allowed {low}..{high}.")
    if cfg.read_timeout_s <= 0:
        raise KxError(f"read_timeout_s={cfg.read_timeout_s} is out of range: allowed > 0.")
    if cfg.max_wait_ms < 0 or cfg.format not in (None, "saved_model", "mxnet", "keras"):
        raise KxError(
            f"max_wait_ms={cfg.max_wait_ms} must be >= 0 and format={cfg.format} one of "
            "saved_model, mxnet, keras."
        )
    return OmegaConf.to_object(cfg)
