"""``target=sagemaker_local``: run the very job target=sagemaker would submit, here, without Docker.

From the CreateTrainingJob request it lays out the container's ``/opt/ml`` tree in a temporary
folder (config JSON files, channel folders, the unpacked source), sets the ``SM_*`` environment the
framework toolkit sets, and runs ``python train.py --key value ...`` with the toolkit's argv. Then it
reads the metrics back from the log with the job's own metric definitions and reports the run in
the shape of a DescribeTrainingJob response.

A job with ``InstanceCount`` N > 1 runs as N hosts ``algo-1`` ... ``algo-N``, each a process with
its own ``/opt/ml`` (``<root>/algo-i``), all on 127.0.0.1: ``KX_HOST_ADDRESSES`` stands in for the
job network's host names, and for an MXNet parameter-server job the rehearsal starts the scheduler
and servers as the MXNet container does. The first host's log and model are the job's.

SIGTERM to the rehearsing process stops the job as StopTrainingJob does: every host gets SIGTERM,
saves nothing past its last checkpoint, and the job ends ``Stopped``.
"""

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
from pathlib import Path
from typing import Any, Dict, List, Tuple

from omegaconf import DictConfig

from kx.backends.cluster import ADDRESSES_ENV
from kx.sagemaker.job import PARAMETER_SERVER_KEY, JobPlan

STOP_GRACE_S = 10  # between SIGTERM and SIGKILL for the other hosts of a failed job
PARAMETER_SERVER_START = "from kx.backends.gluon import import_mxnet; import_mxnet()"  # serves until done


def user_argv(hyperparameters: Dict[str, str]) -> List[str]:
    """The toolkit's argv: every non-``sagemaker_`` hyperparameter as ``--key value``, JSON decoded."""
    argv: List[str] = []
    for key, raw in sorted(hyperparameters.items()):
        if key.startswith("sagemaker_"):
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        argv += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return argv


def scrape_metrics(log: str, definitions: List[Dict[str, str]]) -> Dict[str, float]:
    """Each metric's last match in ``log``, as SageMaker computes a job's final metric values."""
    found = {}
    for definition in definitions:
        matches = re.findall(definition["Regex"], log)
        if matches:
            found[definition["Name"]] = float(matches[-1])
    return found


def _layout(
    root: Path, request: Dict[str, Any], job: JobPlan, hosts: List[str], host: str
) -> Tuple[Dict[str, str], List[str]]:
    """Create ``host``'s /opt/ml under ``root``; return the toolkit's SM_* environment and the script's argv."""

    def local(path: str) -> str:
        return str(root / path[len("/opt/ml/") :]) if path.startswith("/opt/ml/") else path

    config, code = root / "input" / "config", root / "code"
    for folder in (config, code, root / "model", root / "output" / "data", root / "checkpoints"):
        folder.mkdir(parents=True, exist_ok=True)
    hps = {k: local(v) for k, v in request.get("HyperParameters", {}).items()}
    channels = {}
    for name, upload in job.channels.items():
        channels[name] = root / "input" / "data" / name
        channels[name].mkdir(parents=True)
        shutil.copy(upload.local, channels[name] / upload.local.name)
    with tarfile.open(job.source.local) as tar:
        tar.extractall(code)
    resource = {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}
    input_config = {c["ChannelName"]: {"TrainingInputMode": c.get("InputMode", "File"),
                                       "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
                    for c in request.get("InputDataConfig", [])}  # fmt: skip
    (config / "hyperparameters.json").write_text(json.dumps(hps, indent=2))
    (config / "inputdataconfig.json").write_text(json.dumps(input_config, indent=2))
    (config / "resourceconfig.json").write_text(json.dumps(resource, indent=2))
    env = {
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_INPUT_DIR": str(root / "input"),
        "SM_INPUT_CONFIG_DIR": str(config),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HOSTS": json.dumps(hosts),
        "SM_CURRENT_HOST": host,
        "SM_NUM_GPUS": "0",
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_HPS": json.dumps({k: v for k, v in hps.items() if not k.startswith("sagemaker_")}),
        "SM_USER_ARGS": json.dumps(user_argv(hps)),
        "SM_USER_ENTRY_POINT": hps.get("sagemaker_program", "train.py"),
        "SM_MODULE_DIR": hps.get("sagemaker_submit_directory", ""),
        "SM_RESOURCE_CONFIG": json.dumps(resource),
        "SM_INPUT_DATA_CONFIG": json.dumps(input_config),
        "SM_LOG_LEVEL": hps.get("sagemaker_container_log_level", "20"),
        "SM_TRAINING_ENV": json.dumps(
            {
                "job_name": request["TrainingJobName"],
                "hyperparameters": hps,
                "hosts": hosts,
                "current_host": host,
                "channel_input_dirs": {k: str(v) for k, v in channels.items()},
            }
        ),  # fmt: skip
        **{f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()},
    }
    return env, [env["SM_USER_ENTRY_POINT"], *user_argv(hps)]


def run(cfg: DictConfig, request: Dict[str, Any], job: JobPlan, root: Path) -> Dict[str, Any]:
    """Run the job as its containers would, with ``root`` as /opt/ml (``root/algo-i`` for each of several
    hosts); return a DescribeTrainingJob-shaped description (its model artifact is the first host's
    ``output/model.tar.gz``)."""
    hosts = [f"algo-{i}" for i in range(1, request["ResourceConfig"]["InstanceCount"] + 1)]
    roots = {host: root if len(hosts) == 1 else root / host for host in hosts}
    python = cfg.target.python or sys.executable
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "MLFLOW_", "KX_", "DMLC_"))}
    base_env.update(_network_env(hosts), PYTHONUNBUFFERED="1")
    started = time.monotonic()
    parameter_servers = len(hosts) > 1 and _truthy(
        request.get("HyperParameters", {}).get(PARAMETER_SERVER_KEY)
    )
    ps_env = _parameter_server_env(len(hosts), _free_port()) if parameter_servers else {}
    helpers, procs, logs, stopped = [], {}, {}, []

    def stop_job(signum: int, frame: Any) -> None:
        """SIGTERM to this process stops the job as StopTrainingJob does: SIGTERM to every host."""
        stopped.append(signum)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    previous_handler = signal.signal(signal.SIGTERM, stop_job)
    try:
        for host in hosts:
            env, argv = _layout(roots[host], request, job, hosts, host)
            env = {**base_env, **env}
            if parameter_servers:
                env.update(ps_env)
                roles = ["scheduler", "server"] if host == hosts[0] else ["server"]
                helpers += [subprocess.Popen([python, "-c", PARAMETER_SERVER_START], cwd=roots[host] / "code",
                                             env={**env, "DMLC_ROLE": role}, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL) for role in roles]  # fmt: skip
                env.update(DMLC_ROLE="worker")
            print(f"rehearsing {request['TrainingJobName']} on {host} in {roots[host]}: {python} {' '.join(argv)}",
                  file=sys.stderr)  # fmt: skip
            procs[host] = subprocess.Popen([python, *argv], cwd=roots[host] / "code", env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        failed = _wait_all(procs, logs, prefix=len(hosts) > 1)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        for proc in [*procs.values(), *helpers]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    seconds = int(time.monotonic() - started)
    status = "Stopped" if stopped else "Failed" if failed else "Completed"
    chief = roots[hosts[0]]
    log = "".join(logs[hosts[0]])
    for host in hosts:
        (roots[host] / "output" / "rehearsal.log").write_text("".join(logs[host]))
    description = {
        "TrainingJobName": request["TrainingJobName"],
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "HyperParameters": request.get("HyperParameters", {}),
        "AlgorithmSpecification": request["AlgorithmSpecification"],
        "ResourceConfig": request["ResourceConfig"],
        "FinalMetricDataList": [
            {"MetricName": k, "Value": v}
            for k, v in scrape_metrics(
                log, request["AlgorithmSpecification"].get("MetricDefinitions", [])
            ).items()
        ],  # fmt: skip
        "BillableTimeInSeconds": seconds * len(hosts),
        "ModelArtifacts": {"S3ModelArtifacts": str(_tar_model(chief))},
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


def _wait_all(procs: Dict[str, Any], logs: Dict[str, List[str]], prefix: bool) -> List[Tuple[str, int]]:
    """Stream every host's output; return the failed hosts and exit codes, first failure first.

    When one host fails, stop the others as SageMaker fails the job: SIGTERM, then SIGKILL after
    :data:`STOP_GRACE_S` (a host blocked waiting for the failed one never acts on the SIGTERM)."""

    def pump(host: str, proc: Any) -> None:
        for line in proc.stdout:
            sys.stdout.write(f"[{host}] {line}" if prefix else line)
            logs[host].append(line)

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
                proc.terminate()
        elif stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE_S:
            for proc in running:
                proc.kill()
        time.sleep(0.2)
    for reader in readers:
        reader.join()
    for host, proc in procs.items():
        if proc.returncode != 0:
            failed.setdefault(host, proc.returncode)
    return list(failed.items())


def _tar_model(root: Path) -> Path:
    """``output/model.tar.gz``, as SageMaker uploads /opt/ml/model after the job."""
    path = root / "output" / "model.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for item in sorted((root / "model").iterdir()):
            tar.add(item, arcname=item.name)
    return path
