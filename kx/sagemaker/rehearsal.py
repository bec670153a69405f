"""``target=sagemaker_local``: run the very job target=sagemaker would submit, here, without Docker.

From the CreateTrainingJob request it lays out the container's ``/opt/ml`` tree in a folder (config
JSON files, channel folders, the unpacked source) and starts the framework images' own entry, the
SageMaker training toolkit's ``train`` command (PyPI ``sagemaker-training``), in the job's Python
with ``SAGEMAKER_BASE_DIR`` pointing at that folder. The toolkit then does what it does in the
image: installs the job's ``requirements.txt``, sets the ``SM_*`` environment, builds the argv from
``hyperparameters.json`` and runs ``python -- train.py ...``; when the script fails it writes the
generic FailureReason unless the script wrote its own. The rehearsal reads the metrics back from
the log with the job's own metric definitions and reports the run in the shape of a
DescribeTrainingJob response.

A job with ``InstanceCount`` N > 1 runs as N hosts ``algo-1`` ... ``algo-N``, each a process with
its own ``/opt/ml`` (``<root>/algo-i``), all on 127.0.0.1: ``KX_HOST_ADDRESSES`` stands in for the
job network's host names (the toolkit skips its DNS wait for them, as in SageMaker Studio's local
mode), and for an MXNet parameter-server job the rehearsal starts the scheduler and servers as the
MXNet container does. The first host's log and model are the job's.

SIGTERM to the rehearsing process stops the job as StopTrainingJob does: every host gets SIGTERM,
saves nothing past its last checkpoint, and the job ends ``Stopped``; a tuning rehearsal's early
stopping stops a trial the same way (``stop_when``).

As the service does, the rehearsal gives each host only the job's own environment (the machine's
basics, the request's ``Environment``, the toolkit's settings, ``TRAINING_JOB_NAME``), never the
caller's ``PYTHONPATH`` or variables, and syncs the job's checkpoint folder with its
``CheckpointConfig.S3Uri`` before and after the job (:mod:`kx.sagemaker.rehearsal_s3`).
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from omegaconf import DictConfig

from kx.backends.cluster import ADDRESSES_ENV
from kx.sagemaker.job_request import PARAMETER_SERVER_KEY, JobPlan, LaunchError
from kx.sagemaker.rehearsal_s3 import checkpoint_store

STOP_GRACE_S = 10  # between SIGTERM and SIGKILL for the other hosts of a failed job
PARAMETER_SERVER_START = "from kx._compat import import_mxnet; import_mxnet()"  # serves until done
TOOLKIT_TRAIN = "from sagemaker_training.cli.train import main; main()"  # the images' `train` command
HAS_TOOLKIT = "import importlib.util, sys; sys.exit(importlib.util.find_spec('sagemaker_training') is None)"
# What a host keeps of this machine's environment, as an instance has its own: the basics a process
# needs, and OpenBLAS's settings for this processor. Nothing else leaks into the job.
MACHINE_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TZ",
    "TERM",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)
LOG = Path("output") / "rehearsal.log"  # a host's log: everything its toolkit and script printed
KX_LINE = re.compile(r"(\[[^]]*\]\[kx(\.[\w.]+)?\]\[\w+\] - |kx: )")  # kx's console records and messages
LineWatch = Callable[[str], bool]  # True: stop the job (SIGTERM to every host), as the tuner's early stopping


def scrape_metrics(log: str, definitions: List[Dict[str, str]]) -> Dict[str, float]:
    """Each metric's last match in ``log``, as SageMaker computes a job's final metric values."""
    found = {}
    for definition in definitions:
        matches = re.findall(definition["Regex"], log)
        if matches:
            found[definition["Name"]] = float(matches[-1])
    return found


def check_toolkit(python: str) -> None:
    """:class:`LaunchError` unless ``python`` has the training toolkit the framework images run."""
    if subprocess.run([python, "-c", HAS_TOOLKIT], capture_output=True).returncode:
        raise LaunchError(
            f"{python} lacks the SageMaker training toolkit that runs jobs in the framework "
            f"images; install it there: {python} -m pip install sagemaker-training"
        )


def layout(root: Path, request: Dict[str, Any], job: JobPlan, hosts: List[str], host: str) -> None:
    """Create ``host``'s /opt/ml under ``root`` as SageMaker fills it before the container starts."""
    config, code = root / "input" / "config", root / "code"
    for folder in (config, code, root / "model", root / "output" / "data", root / "checkpoints"):
        folder.mkdir(parents=True, exist_ok=True)
    for name, upload in job.channels.items():
        (root / "input" / "data" / name).mkdir(parents=True)
        shutil.copy(upload.local, root / "input" / "data" / name / upload.local.name)
    with tarfile.open(job.source.local) as tar:
        tar.extractall(code)  # the toolkit finds the code there and skips its S3 download
    resource = {
        "current_host": host,
        "hosts": hosts,
        "network_interface_name": "eth0",
        "current_instance_type": request["ResourceConfig"]["InstanceType"],
    }
    input_config = {
        c["ChannelName"]: {
            "TrainingInputMode": c.get("InputMode", "File"),
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
        for c in request.get("InputDataConfig", [])
    }
    (config / "hyperparameters.json").write_text(json.dumps(request.get("HyperParameters", {}), indent=2))
    (config / "inputdataconfig.json").write_text(json.dumps(input_config, indent=2))
    (config / "resourceconfig.json").write_text(json.dumps(resource, indent=2))


def container_env(root: Path, job_name: str) -> Dict[str, str]:
    """What the rehearsal tells the toolkit: the job's name (as the service sets it), where /opt/ml is,
    and that the job's host names are not in DNS (the toolkit's switch for SageMaker Studio's local
    mode skips its wait for them)."""
    return {
        "TRAINING_JOB_NAME": job_name,
        "SAGEMAKER_BASE_DIR": str(root),
        "SM_STUDIO_LOCAL_MODE": "true",
        "PYTHONUNBUFFERED": "1",
    }


def run(
    cfg: DictConfig, request: Dict[str, Any], job: JobPlan, root: Path, stop_when: Optional[LineWatch] = None
) -> Dict[str, Any]:
    """Run the job as its containers would, with ``root`` as /opt/ml (``root/algo-i`` for each of several
    hosts); return a DescribeTrainingJob-shaped description (its model artifact is the first host's
    ``output/model.tar.gz``). ``stop_when`` sees the first host's log lines as they come and stops
    the job when it returns True."""
    hosts = [f"algo-{i}" for i in range(1, request["ResourceConfig"]["InstanceCount"] + 1)]
    roots = {host: root if len(hosts) == 1 else root / host for host in hosts}
    python = cfg.target.python or sys.executable
    check_toolkit(python)
    store = checkpoint_store(cfg.target) if "CheckpointConfig" in request else None
    created, started = datetime.now(timezone.utc), time.monotonic()
    helpers, procs, logs, stopped = [], {}, {}, []

    def stop_job(signum: int, frame: Any) -> None:
        """SIGTERM to this process stops the job as StopTrainingJob does: SIGTERM to every host."""
        stopped.append(signum)
        for proc in procs.values():
            _signal_host(proc, signal.SIGTERM)

    previous_handler = signal.signal(signal.SIGTERM, stop_job)
    try:
        envs = host_envs(request, hosts, roots)
        for host in hosts:
            layout(roots[host], request, job, hosts, host)
            if store:
                store.pull(request["CheckpointConfig"]["S3Uri"], roots[host] / "checkpoints")
            helpers += _start_parameter_servers(python, envs[host], roots[host], first=host == hosts[0])
            print(
                f"rehearsing {request['TrainingJobName']} on {host} in {roots[host]} with {python} "
                f"(the SageMaker training toolkit's train command; its pip, environment and script output: "
                f"{roots[host] / LOG})",
                file=sys.stderr,
            )
            procs[host] = subprocess.Popen(
                [python, "-c", TOOLKIT_TRAIN],
                cwd=roots[host],
                env=envs[host],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )

        def watch(line: str) -> None:
            if stop_when is not None and stop_when(line) and not stopped:
                stop_job(signal.SIGTERM, None)

        failed = _wait_all(procs, logs, {host: roots[host] / LOG for host in hosts}, watch=watch)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        for proc in procs.values():
            _signal_host(proc, signal.SIGKILL)
        for proc in helpers:
            proc.kill()
        for proc in [*procs.values(), *helpers]:
            proc.wait()
    if store:
        for host in hosts:
            store.push(roots[host] / "checkpoints", request["CheckpointConfig"]["S3Uri"])
    status = "Stopped" if stopped else "Failed" if failed else "Completed"
    return _describe(request, status, roots, logs, failed, (created, int(time.monotonic() - started)))


def host_envs(request: Dict[str, Any], hosts: List[str], roots: Dict[str, Path]) -> Dict[str, Dict[str, str]]:
    """Each host's process environment: :data:`MACHINE_ENV` of this one's, the request's ``Environment``,
    :func:`container_env`, the hosts' addresses and, for a parameter-server job, MXNet's ``DMLC_*``."""
    base = {k: v for k, v in os.environ.items() if k in MACHINE_ENV}
    base.update(request.get("Environment", {}))
    base.update(_network_env(hosts))
    if len(hosts) > 1 and _truthy(request.get("HyperParameters", {}).get(PARAMETER_SERVER_KEY)):
        base.update(_parameter_server_env(len(hosts), _free_port()), DMLC_ROLE="worker")
    return {host: {**base, **container_env(roots[host], request["TrainingJobName"])} for host in hosts}


def _start_parameter_servers(python: str, env: Dict[str, str], root: Path, first: bool) -> List[Any]:
    """For a parameter-server job, start this host's MXNet server (and on the first host the
    scheduler) as the MXNet container does before it runs the script."""
    if "DMLC_ROLE" not in env:
        return []
    return [
        subprocess.Popen(
            [python, "-c", PARAMETER_SERVER_START],
            cwd=root / "code",
            env={**env, "DMLC_ROLE": role},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for role in (["scheduler", "server"] if first else ["server"])
    ]


def _describe(
    request: Dict[str, Any],
    status: str,
    roots: Dict[str, Path],
    logs: Dict[str, List[str]],
    failed: List[Tuple[str, int]],
    timing: Tuple[datetime, int],
) -> Dict[str, Any]:
    """The finished job as DescribeTrainingJob reports it."""
    hosts = list(roots)
    definitions = request["AlgorithmSpecification"].get("MetricDefinitions", [])
    (created, seconds), ended = timing, datetime.now(timezone.utc)
    description = {
        "TrainingJobName": request["TrainingJobName"],
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "HyperParameters": request.get("HyperParameters", {}),
        "AlgorithmSpecification": request["AlgorithmSpecification"],
        "ResourceConfig": request["ResourceConfig"],
        "CreationTime": created,
        "TrainingStartTime": created,
        "TrainingEndTime": ended,
        "TrainingTimeInSeconds": seconds,
        "FinalMetricDataList": [
            {"MetricName": k, "Value": v, "Timestamp": ended}
            for k, v in scrape_metrics("".join(logs[hosts[0]]), definitions).items()
        ],
        "BillableTimeInSeconds": seconds * len(hosts),
        "ModelArtifacts": {"S3ModelArtifacts": str(_tar_model(roots[hosts[0]]))},
    }
    if failed:
        host, code = failed[0]
        failure = roots[host] / "output" / "failure"
        reason = failure.read_text() if failure.is_file() else f"exit code {code}"
        description["FailureReason"] = f"{host}: {reason}" if len(hosts) > 1 else reason
    return description


def _truthy(raw: Any) -> bool:
    try:
        return json.loads(raw) is True
    except (TypeError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _network_env(hosts: List[str]) -> Dict[str, str]:
    """Where each host listens: every host on 127.0.0.1, with a port of its own."""
    if len(hosts) == 1:
        return {}
    return {ADDRESSES_ENV: json.dumps({host: f"127.0.0.1:{_free_port()}" for host in hosts})}


def _parameter_server_env(hosts: int, scheduler_port: int) -> Dict[str, str]:
    """The ``DMLC_*`` environment the MXNet container gives its scheduler, servers and workers when
    the job sets ``sagemaker_parameter_server_enabled``: one server per host, the scheduler on the
    first host, here all on 127.0.0.1."""
    return {
        "DMLC_NUM_WORKER": str(hosts),
        "DMLC_NUM_SERVER": str(hosts),
        "DMLC_PS_ROOT_URI": "127.0.0.1",
        "DMLC_PS_ROOT_PORT": str(scheduler_port),
        "DMLC_NODE_HOST": "127.0.0.1",  # every node announces the loopback address
        "PS_VERBOSE": "0",
    }


def console_line(line: str) -> bool:
    """True for the script's own lines (kx's log records and ``kx:`` messages): the console shows
    those; the toolkit's pip, ``SM_*`` environment and hyperparameter lines stay in the job's log."""
    return bool(KX_LINE.match(line))


def _wait_all(
    procs: Dict[str, Any],
    logs: Dict[str, List[str]],
    files: Dict[str, Path],
    watch: Optional[Callable[[str], None]] = None,
) -> List[Tuple[str, int]]:
    """Write every host's output to its log file as it comes and show the script's own lines
    (:func:`console_line`; the first host's lines go through ``watch`` too); return the failed
    hosts and exit codes, first failure first.

    When one host fails, stop the others as SageMaker fails the job: SIGTERM, then SIGKILL after
    :data:`STOP_GRACE_S` (a host blocked waiting for the failed one never acts on the SIGTERM)."""
    first, prefix = next(iter(procs)), len(procs) > 1

    def pump(host: str, proc: Any) -> None:
        with open(files[host], "w", encoding="utf-8") as log_file:
            for line in proc.stdout:
                log_file.write(line)
                log_file.flush()
                if console_line(line):
                    sys.stdout.write(f"[{host}] {line}" if prefix else line)
                logs[host].append(line)
                if watch and host == first:
                    watch(line)

    readers = []
    for host, proc in procs.items():
        logs[host] = []
        readers.append(threading.Thread(target=pump, args=(host, proc), daemon=True))
        readers[-1].start()
    stopping_since, failed = None, {}  # host -> exit code, in the order the hosts failed
    while any(proc.poll() is None for proc in procs.values()):
        for host, proc in procs.items():
            if proc.poll() not in (None, 0):
                failed.setdefault(host, proc.returncode)
        running = [proc for proc in procs.values() if proc.poll() is None]
        if stopping_since is None and failed:
            stopping_since = time.monotonic()
            for proc in running:
                _signal_host(proc, signal.SIGTERM)
        elif stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE_S:
            for proc in running:
                _signal_host(proc, signal.SIGKILL)
        time.sleep(0.2)
    for reader in readers:
        reader.join()
    for host, proc in procs.items():
        if proc.returncode != 0:
            failed.setdefault(host, proc.returncode)
    return list(failed.items())


def _signal_host(proc: Any, sig: int) -> None:
    """``sig`` to what the host's toolkit started (train.py first of all), or to the toolkit while it
    has started nothing; SIGKILL to both. The toolkit outlives its script to report, as in the image."""
    import psutil  # a dependency of the toolkit

    if proc.poll() is not None:
        return  # its id may belong to another process by now
    try:
        toolkit = psutil.Process(proc.pid)
        started = toolkit.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for target in started if started and sig != signal.SIGKILL else [*started, toolkit]:
        with contextlib.suppress(psutil.NoSuchProcess):
            target.send_signal(sig)


def _tar_model(root: Path) -> Path:
    """``output/model.tar.gz``, as SageMaker uploads /opt/ml/model after the job."""
    path = root / "output" / "model.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for item in sorted((root / "model").iterdir()):
            tar.add(item, arcname=item.name)
    return path
