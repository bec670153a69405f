"""Following a submitted training job: status line, CloudWatch logs, and the summary kx tracks."""

import io
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Dict, Optional, TextIO

from kx.data.files import split_s3
from kx.sagemaker.script_mode import is_toolkit_key

TERMINAL = ("Completed", "Failed", "Stopped")
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def summary(description: Dict[str, Any]) -> Dict[str, Any]:
    """The parts of a DescribeTrainingJob response that kx reports and logs to MLflow."""
    hps = description.get("HyperParameters", {})
    return {
        "job_name": description["TrainingJobName"],
        "status": description["TrainingJobStatus"],
        "failure_reason": description.get("FailureReason"),
        "hyperparameters": {k: v for k, v in hps.items() if not is_toolkit_key(k)},
        "started": epoch_ms(description.get("TrainingStartTime")),
        "ended": epoch_ms(description.get("TrainingEndTime")),
        "final_metrics": {m["MetricName"]: m["Value"] for m in description.get("FinalMetricDataList", [])},
        "billable_seconds": description.get("BillableTimeInSeconds"),
        "model_artifacts": description.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
        "image": description.get("AlgorithmSpecification", {}).get("TrainingImage"),
        "instance_type": description.get("ResourceConfig", {}).get("InstanceType"),
    }


def epoch_ms(when: Any) -> Optional[int]:
    """A response's timestamp (a datetime, as boto3 parses it) in epoch milliseconds."""
    return int(when.timestamp() * 1000) if when is not None else None


def status_line(description: Dict[str, Any], started: float) -> str:
    elapsed = int(time.monotonic() - started)
    secondary = description.get("SecondaryStatus", "")
    return (
        f"{description['TrainingJobName']}: {description['TrainingJobStatus']} / {secondary} "
        f"({elapsed // 60}m{elapsed % 60:02d}s)"
    )


class LogTail:
    """Prints a job's CloudWatch log events as they arrive, across its log streams."""

    def __init__(self, logs: Any, job_name: str, out: Optional[TextIO] = None) -> None:
        self.logs, self.job_name, self.out = logs, job_name, out or sys.stdout
        self.tokens: Dict[str, Optional[str]] = {}

    def poll(self) -> int:
        """Print new events; return how many were printed."""
        try:
            streams = self.logs.describe_log_streams(
                logGroupName=LOG_GROUP, logStreamNamePrefix=f"{self.job_name}/"
            )
        except self.logs.exceptions.ResourceNotFoundException:
            return 0  # no log group before the first job's container starts
        printed = 0
        for stream in streams.get("logStreams", []):
            name = stream["logStreamName"]
            kwargs = {"logGroupName": LOG_GROUP, "logStreamName": name, "startFromHead": True}
            if self.tokens.get(name):
                kwargs["nextToken"] = self.tokens[name]
            page = self.logs.get_log_events(**kwargs)
            for event in page.get("events", []):
                print(event["message"], file=self.out)
                printed += 1
            self.tokens[name] = page.get("nextForwardToken")
        return printed


def wait(
    sm: Any, job_name: str, poll_s: float, tail: Optional[LogTail] = None, out: Optional[TextIO] = None
) -> Optional[Dict[str, Any]]:
    """Poll until the job ends, showing a live status line (and its logs when ``tail`` is given).
    On Ctrl-C leave the job running, say how to follow it and return None. ``out`` defaults to
    the stderr of the call's time, not of the import's."""
    out = out or sys.stderr
    started = time.monotonic()
    try:
        while True:
            description = sm.describe_training_job(TrainingJobName=job_name)
            if tail is not None:
                tail.poll()
            show(status_line(description, started), out, done=description["TrainingJobStatus"] in TERMINAL)
            if description["TrainingJobStatus"] in TERMINAL:
                return description
            time.sleep(poll_s)
    except KeyboardInterrupt:
        left_running("training", job_name, out)
        return None


def left_running(kind: str, name: str, out: TextIO) -> None:
    print(
        f"\n{kind} job {name} keeps running on SageMaker: follow it with `python launch.py status {name}`"
        + (f", log its results so far with `python launch.py results {name}`" if kind == "tuning" else "")
        + f", stop it with `python launch.py stop {name}`.",
        file=out,
    )


def show(line: str, out: TextIO, done: bool) -> None:
    """One live status line on a terminal (rewritten in place), a line per update otherwise."""
    if out.isatty():
        print(f"\r{line}\033[K", end="\n" if done else "", file=out, flush=True)
    else:
        print(line, file=out, flush=True)


def fetch_output(s3: Any, description: Dict[str, Any], dest: Path) -> Optional[Path]:
    """The job's output data (train.py's ``config.yaml``, ``metrics.json`` and plots, which it writes
    to /opt/ml/output/data) unpacked from its ``output.tar.gz`` into ``dest``; None without one."""
    if description["TrainingJobStatus"] not in TERMINAL:
        return None
    prefix = description.get("OutputDataConfig", {}).get("S3OutputPath", "").rstrip("/")
    bucket, key = split_s3(f"{prefix}/{description['TrainingJobName']}/output/output.tar.gz")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.ClientError:
        return None  # no output (a job that failed early): its final metric values stand in
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        tar.extractall(dest, filter="data")
    return dest
