"""Where a rehearsal keeps what SageMaker keeps in S3 for a job: its checkpoints.

SageMaker copies everything under a job's ``CheckpointConfig.S3Uri`` into the job's checkpoint folder
before it starts, and uploads what appears there. The rehearsal does the same through the S3 API at
``target.s3_endpoint`` (a local moto server, say), else through a local folder that stands in for
the buckets (``<target.root>/s3``), so a rehearsal never writes to a real bucket.
"""

import shutil
from pathlib import Path
from typing import Any

from kx.data.files import split_s3


class FolderStore:
    """Buckets as folders: ``s3://bucket/key`` is ``<root>/bucket/key``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, uri: str) -> Path:
        bucket, key = split_s3(uri)
        return self.root / bucket / key

    def pull(self, uri: str, dest: Path) -> None:
        if self._path(uri).is_dir():
            shutil.copytree(self._path(uri), dest, dirs_exist_ok=True)

    def push(self, src: Path, uri: str) -> None:
        shutil.copytree(src, self._path(uri), dirs_exist_ok=True)


class S3Store:
    """A real S3 API (boto3's client), object by object as the service syncs."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def pull(self, uri: str, dest: Path) -> None:
        bucket, prefix = split_s3(uri)
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                target = dest / item["Key"][len(prefix) :].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(bucket, item["Key"], str(target))

    def push(self, src: Path, uri: str) -> None:
        bucket, prefix = split_s3(uri)
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            self.client.upload_file(str(path), bucket, prefix + path.relative_to(src).as_posix())


def checkpoint_store(target: Any) -> Any:
    """``target.s3_endpoint``'s S3 API, else a folder under ``target.root``."""
    if target.s3_endpoint:
        import boto3

        return S3Store(boto3.Session().client("s3", endpoint_url=target.s3_endpoint))
    return FolderStore(Path(target.root).resolve() / "s3")
