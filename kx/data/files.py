"""Where a dataset's files are: a local path, or an ``s3://`` URI fetched once into a local cache."""

import os
import zipfile
import zlib
from pathlib import Path
from typing import Tuple

from kx.data.dataset import DataError

# what numpy raises for a truncated or corrupted .npz/.npy file (its zip and deflate layers included)
UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def cache_dir() -> Path:
    return Path(os.environ.get("KX_CACHE", Path.home() / ".cache" / "kx"))


def split_s3(uri: str) -> Tuple[str, str]:
    """``s3://bucket/key`` as ``(bucket, key)``."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def local_path(path: str, key: str = "dataset.path") -> Path:
    """``path`` itself, or the local copy of the S3 object or prefix it names (boto3, lazily)."""
    if not path.startswith("s3://"):
        found = Path(path).expanduser()
        if not found.exists():
            raise DataError(f"{key}={path!r} does not exist.")
        return found
    bucket, key_prefix = split_s3(path)
    dest = cache_dir() / "s3" / bucket / key_prefix
    if not dest.exists():
        _download(bucket, key_prefix, dest, f"{key}={path!r}")
    return dest


def _download(bucket: str, prefix: str, dest: Path, what: str) -> None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto3.client("s3")
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [
            item["Key"]
            for page in pages
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
        ]
        if not keys:
            raise DataError(f"{what}: no S3 object has that key or prefix.")
        for key in keys:
            target = dest if key == prefix else dest / key[len(prefix) :].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))
    except (BotoCoreError, ClientError) as err:
        raise DataError(f"{what}: cannot read it from S3 ({type(err).__name__}: {err}).") from None
