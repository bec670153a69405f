"""The settings launch.py needs before it talks to AWS, all reported at once, the AWS session in the
region boto3 resolves, and AWS errors as one line that says how to fix them. Used by launch.py's
commands only (never inside a job)."""

from typing import Any, List, Optional

from omegaconf import DictConfig

from kx.errors import KxError

CREDENTIALS_HELP = (
    "read from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE with "
    "~/.aws/credentials (`aws configure`), `aws sso login`, or the instance's IAM role"
)


REHEARSAL_REGION = "eu-west-1"  # a rehearsal's jobs name a region but never reach it
REGION_HELP = (
    "target.region=NAME, AWS_DEFAULT_REGION, or the region of your AWS profile "
    "(`aws configure set region NAME`)"
)


class SettingsError(KxError):
    """launch.py lacks settings; the message lists every missing one and how to give it."""


def aws_session(region: Optional[str], rehearsal: bool = False) -> Any:
    """boto3's session in ``region``, or when None in the region boto3 resolves as the AWS CLI does
    (AWS_DEFAULT_REGION, the profile's); a rehearsal without one takes :data:`REHEARSAL_REGION`."""
    import boto3

    session = boto3.Session(region_name=region)
    if session.region_name is None:
        if not rehearsal:
            raise SettingsError(f"No AWS region is set: give {REGION_HELP}.")
        session = boto3.Session(region_name=REHEARSAL_REGION)
    return session


def missing(cfg: DictConfig, dry_run: bool, boto_session: Any) -> List[str]:
    """What is missing for this launch: the role, the bucket for a dry run, credentials for a real one."""
    target = cfg.target
    gaps: List[str] = []
    if not target.role:
        gaps.append(
            "target.role (the IAM role ARN the job runs as: target.role=arn:aws:iam::<account>:"
            "role/<name> or $KX_SAGEMAKER_ROLE)"
        )
    if dry_run and not target.bucket:
        gaps.append(
            "target.bucket (--dry-run cannot ask AWS for the default bucket, whose name includes "
            "the account id: target.bucket=NAME or $KX_SAGEMAKER_BUCKET)"
        )
    if not dry_run and target.name == "sagemaker" and boto_session.get_credentials() is None:
        gaps.append(f"AWS credentials ({CREDENTIALS_HELP})")
    return gaps


def check(cfg: DictConfig, dry_run: bool, boto_session: Any) -> None:
    """Raise one :class:`SettingsError` naming every missing setting."""
    gaps = missing(cfg, dry_run, boto_session)
    if gaps:
        raise SettingsError(f"launch.py needs {len(gaps)} more setting(s): " + "; ".join(gaps) + ".")


def aws_error_message(err: Exception) -> str:
    """A botocore/boto3 error as one line; a credentials error says how credentials are provided."""
    message = f"{type(err).__name__}: {err}"
    if type(err).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return f"{message}. AWS credentials are {CREDENTIALS_HELP}."
    return message
