"""`pip install -e ".[sagemaker]"` resolves directly and downgrades nothing the first install put in."""

import importlib.metadata

import pytest
import tomllib
from packaging.requirements import Requirement

from tests.conftest import PROJECT_DIR

PROJECT = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]


def requirements(entries):
    return {Requirement(entry).name.lower().replace("_", "-"): Requirement(entry) for entry in entries}


def test_the_sagemaker_extra_keeps_pip_off_s3fs_releases_that_need_aiobotocore():
    # sagemaker-mlops needs s3fs; from 0.5 s3fs goes through aiobotocore, whose botocore pins clash
    # with sagemaker-core's boto3, and pip tried every aiobotocore release before settling on 0.4.2
    s3fs = requirements(PROJECT["optional-dependencies"]["sagemaker"])["s3fs"]
    assert s3fs.specifier.contains("0.4.2") and not s3fs.specifier.contains("0.5.0")


@pytest.mark.parametrize("name", ["protobuf", "rich", "importlib-metadata"])
def test_the_first_install_stays_within_sagemaker_cores_caps(name):
    try:
        core = requirements(importlib.metadata.requires("sagemaker-core") or [])
    except importlib.metadata.PackageNotFoundError:
        pytest.skip('pip install -e ".[sagemaker]"')
    caps = {spec.version for spec in core[name].specifier if spec.operator == "<"}
    mine = requirements(PROJECT["dependencies"])[name]
    assert caps and all(not mine.specifier.contains(cap) for cap in caps), (core[name], mine)
