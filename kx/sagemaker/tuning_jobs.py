"""Submitting a tuning job, following it with one live status line, and fetching its trials."""

import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO

from omegaconf import DictConfig

from kx.sagemaker import tuning_rehearsal, tuning_request
from kx.sagemaker.job_request import upload
from kx.sagemaker.job_watch import fetch_output, left_running, show
from kx.sagemaker.tuning_results import record, tuned_job

TUNING_TERMINAL = ("Completed", "Failed", "Stopped", "DeleteFailed")


def launch(
    cfg: DictConfig, trainer: Any, job: Any, session: Any, clients: Any, dry_run: bool, wait: bool
) -> int:
    """Translate the sweep, then print the request (``--dry-run``), rehearse it here
    (``target=sagemaker_local``) or submit it (and, with ``wait``, follow it and log its results)."""

    spec = tuning_request.translate(cfg)  # rejections first: nothing is built or uploaded for a bad sweep
    request = tuning_request.request(spec, trainer, session, job.base_job_name)
    if dry_run:
        print(json.dumps(request, indent=2, default=str))
        return 0
    if cfg.target.name == "sagemaker_local":
        return tuning_rehearsal.run(cfg, request, job)
    sm, s3 = clients
    for item in job.uploads:
        uploaded = upload(s3, item)
        print(f"{'uploaded' if uploaded else 'already in S3, skipped'}: {item.uri}", file=sys.stderr)
    name = request["HyperParameterTuningJobName"]
    sm.create_hyper_parameter_tuning_job(**request)
    print(name)
    if not wait:
        return 0
    if follow(sm, name, cfg.target.poll_s) is None:
        return 130  # Ctrl-C: the job runs on
    return results(cfg, sm, s3, name)


def status_line(description: Dict[str, Any], started: Optional[float] = None) -> str:
    """``NAME: InProgress  trials 3 completed, 1 running, 0 failed, 0 stopped  best ...  (1m05s)``."""
    counts = description.get("TrainingJobStatusCounters", {})
    failed = counts.get("RetryableError", 0) + counts.get("NonRetryableError", 0)
    line = (
        f"{description['HyperParameterTuningJobName']}: {description['HyperParameterTuningJobStatus']}  "
        f"trials {counts.get('Completed', 0)} completed, {counts.get('InProgress', 0)} running, "
        f"{failed} failed, {counts.get('Stopped', 0)} stopped"
    )
    best = description.get("BestTrainingJob", {}).get("FinalHyperParameterTuningJobObjectiveMetric")
    if best:
        line += f"  best {best['MetricName']}={best['Value']:.4f}"
    if started is not None:
        elapsed = int(time.monotonic() - started)
        line += f"  ({elapsed // 60}m{elapsed % 60:02d}s)"
    return line


def follow(sm: Any, name: str, poll_s: float, out: Optional[TextIO] = None) -> Optional[Dict[str, Any]]:
    """Poll until the tuning job ends; on Ctrl-C leave it running, say how to follow it, return None."""
    out = out or sys.stderr
    started = time.monotonic()
    try:
        while True:
            description = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            done = description["HyperParameterTuningJobStatus"] in TUNING_TERMINAL
            show(status_line(description, started), out, done)
            if done:
                return description
            time.sleep(poll_s)
    except KeyboardInterrupt:
        left_running("tuning", name, out)
        return None


def training_job_summaries(sm: Any, name: str) -> List[Dict[str, Any]]:
    """The tuning job's training jobs (every page), each with the objective value SageMaker read."""
    summaries, token = [], None
    while True:
        page = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, **({"NextToken": token} if token else {})
        )
        summaries += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            return summaries


def sweep_name(sm: Any, description: Dict[str, Any]) -> Optional[str]:
    """The sweep file the job came from (its ``kx:sweep`` tag)."""
    try:
        tags = sm.list_tags(ResourceArn=description["HyperParameterTuningJobArn"]).get("Tags", [])
    except sm.exceptions.ClientError:  # e.g. no sagemaker:ListTags permission: trials lack sweep.* params
        return None
    return next((t["Value"] for t in tags if t["Key"] == "kx:sweep"), None)


def results(cfg: DictConfig, sm: Any, s3: Any, name: str) -> int:
    """Log the tuning job's trials so far to MLflow (again: only what is new); 0 once it completed."""

    description = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    out_dir = Path("outputs") / "tuning" / name  # the report, and each training job's output data
    jobs = []
    for item in training_job_summaries(sm, name):
        job = sm.describe_training_job(TrainingJobName=item["TrainingJobName"])
        jobs.append(tuned_job(item, job, fetch_output(s3, job, out_dir / job["TrainingJobName"])))
    record(cfg, description, jobs, out_dir, sweep_name(sm, description))  # ends with the run's link
    return 0 if description["HyperParameterTuningJobStatus"] in ("Completed", "InProgress") else 1
