"""Multi-worker training: SM_HOSTS/SM_CURRENT_HOST, TF_CONFIG, and MXNet's parameter servers."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from kx.backends import BackendError, Cluster, create_backend
from kx.backends.base import data_parallel_steps
from kx.backends.cluster import ClusterError
from kx.sagemaker import rehearsal
from tests.conftest import PROJECT_DIR, free_port, job_failure
from tests.helpers.moto import guarded
from tests.test_rehearsal import PY38, mlflow_run, rehearse

HOSTS = {"SM_HOSTS": '["algo-1", "algo-2"]'}


def test_the_cluster_comes_from_sagemakers_environment():
    cluster = Cluster.from_env({**HOSTS, "SM_CURRENT_HOST": "algo-2"})
    assert (cluster.size, cluster.rank, cluster.is_chief) == (2, 1, False)
    assert cluster.tf_config() == {
        "cluster": {"worker": ["algo-1:2222", "algo-2:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    rehearsed = Cluster.from_env(
        {**HOSTS, "SM_CURRENT_HOST": "algo-1", "KX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1:5001"}'}
    )
    assert rehearsed.is_chief and rehearsed.tf_config()["cluster"]["worker"] == [
        "127.0.0.1:5001",
        "algo-2:2222",
    ]
    single = Cluster.from_env({})
    assert (single.size, single.is_chief) == (1, True)


@pytest.mark.parametrize(
    "env, message",
    [
        ({**HOSTS, "SM_CURRENT_HOST": "algo-3"}, "SM_CURRENT_HOST='algo-3' is not one of SM_HOSTS="),
        (
            {"SM_HOSTS": "algo-1,algo-2", "SM_CURRENT_HOST": "algo-1"},
            "SM_HOSTS or KX_HOST_ADDRESSES is not valid",
        ),
    ],
)
def test_an_inconsistent_cluster_is_named(env, message):
    with pytest.raises(ClusterError, match=message):
        Cluster.from_env(env)


@pytest.mark.slow  # a failing host of several leaves by os._exit: only a process of its own shows it
def test_train_py_reports_a_bad_host_in_one_line_and_the_failure_file(tmp_path):
    env = {**HOSTS, "SM_CURRENT_HOST": "algo-9", "SM_OUTPUT_DATA_DIR": str(tmp_path / "output" / "data")}
    failure = job_failure(tmp_path, env, "--dataset", "synthetic")
    assert failure.startswith("SM_CURRENT_HOST='algo-9' is not one of SM_HOSTS=")


@pytest.mark.parametrize(("hosts", "left_at_once"), [('["algo-1", "algo-2"]', True), ('["algo-1"]', False)])
def test_a_failed_run_on_one_host_of_several_leaves_at_once(monkeypatch, hosts, left_at_once):
    """train.py's ending (the process itself: the bad host above): a failure on one host of several
    exits at once with its code, skipping the engines' shutdown that would wait for the other hosts."""
    import train as entry

    class Left(Exception):
        pass

    def leave(code: int) -> None:
        raise Left(code)

    monkeypatch.setenv("SM_HOSTS", hosts)
    monkeypatch.setattr(entry, "main", lambda: entry.fail("SM_CURRENT_HOST='algo-9' is not one of SM_HOSTS"))
    monkeypatch.setattr(os, "_exit", leave)
    with pytest.raises(Left if left_at_once else SystemExit) as ended:
        entry.leave_at_once_on_failure()
    assert (ended.value.args[0] if left_at_once else ended.value.code) == 2


def test_only_a_batch_split_over_hosts_must_divide():
    assert data_parallel_steps(128, 1500, 2, "hosts") == 11  # the partial 12th batch is dropped
    with pytest.raises(BackendError, match="train.batch_size=99 does not split over 2 hosts"):
        data_parallel_steps(99, 1500, 2, "hosts")
    with pytest.raises(BackendError, match="at most the 50 training samples"):
        data_parallel_steps(64, 50, 2, "replicas")


@pytest.mark.slow
def test_one_host_trains_a_batch_larger_than_its_training_set(run_train):
    if importlib.util.find_spec("mxnet") is None:
        pytest.skip("mxnet is not installed")
    # one host keeps its partial batch: a batch larger than the training set still trains
    run_train(
        "backend=mxnet",
        "model=mlp",
        "dataset=synthetic",
        "dataset.train_samples=50",
        "train.batch_size=128",
        "train.epochs=1",
        "tracking.enabled=false",
    )


def test_backends_that_cannot_train_across_hosts_say_so(compose_cfg):
    two_hosts = Cluster(hosts=["algo-1", "algo-2"], current_host="algo-1")
    for name in ("jax", "torch"):
        with pytest.raises(BackendError, match=f"backend={name} cannot train across 2 hosts"):
            create_backend(compose_cfg(f"backend={name}").backend, two_hosts)


def test_mxnet_across_hosts_needs_the_parameter_servers(compose_cfg, monkeypatch):
    if importlib.util.find_spec("mxnet") is None:
        pytest.skip("mxnet is not installed")
    monkeypatch.delenv("DMLC_ROLE", raising=False)
    backend = create_backend(compose_cfg("backend=mxnet").backend, Cluster(["algo-1", "algo-2"], "algo-2"))
    with pytest.raises(BackendError, match="sagemaker_parameter_server_enabled=true"):
        backend.prepare(seed=0, deterministic=False)


def _fashion_mnist_or_skip():
    if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
        pytest.skip("apt-get install dataset-fashion-mnist")


def _epoch_lines(log: str):
    return [line.split("] - ", 1)[1] for line in log.splitlines() if "] - epoch=" in line]


@pytest.mark.slow
def test_tensorflow_job_on_two_hosts_trains_one_model(tmp_path):
    _fashion_mnist_or_skip()
    proc, root = rehearse(tmp_path, "target.instance_count=2", "train.batch_size=128")
    first, second = root / "algo-1", root / "algo-2"
    assert json.loads((second / "input" / "config" / "resourceconfig.json").read_text()) == {
        "current_host": "algo-2",
        "hosts": ["algo-1", "algo-2"],
        "network_interface_name": "eth0",
        "current_instance_type": "ml.m5.xlarge",
    }
    logs = [(host / "output" / "rehearsal.log").read_text() for host in (first, second)]
    # each host trains on half of every global batch of 128: 1500 samples -> 11 steps of 2 x 64
    assert all(
        "data-parallel: 11 steps per epoch, each a global batch of 128 split over 2 replicas on 2 hosts"
        in log
        for log in logs
    )
    # the first host's log holds the job's metric lines (a tuner reads them once); both trained alike
    assert len(_epoch_lines(logs[0])) == 2 and not _epoch_lines(logs[1])
    assert logs[1].count("the first host logs the metrics") == 2
    checkpoints = {h: h / "checkpoints" / root.name / h.name / "last" for h in (first, second)}
    histories = [
        json.loads((checkpoints[h] / "monitor.json").read_text())["history"] for h in (first, second)
    ]
    assert histories[0] == histories[1]
    # the hosts end with the same weights, BatchNorm statistics included; only the first exports
    import keras

    from kx.models import conv_batch_norm

    custom = conv_batch_norm.custom_objects()  # a checkpoint keeps kx's layers
    weights = [
        keras.saving.load_model(checkpoints[h] / "last.keras", custom_objects=custom).get_weights()
        for h in (first, second)
    ]
    assert all(np.array_equal(a, b) for a, b in zip(*weights))
    assert (first / "model" / "model" / "1" / "saved_model.pb").is_file() and not any(
        (second / "model").iterdir()
    )
    with tarfile.open(first / "output" / "model.tar.gz") as tar:
        assert "model/1/saved_model.pb" in tar.getnames()
    run = mlflow_run(tmp_path)
    # 10 classes, two short epochs on 1,500 images: well above chance, short of a trained model
    assert run.data.tags["kx.sagemaker.status"] == "Completed" and run.data.metrics["best_val_acc"] > 0.3


@pytest.mark.slow
def test_mxnet_job_on_two_hosts_matches_one_host_with_the_same_global_batch(tmp_path):
    """Without dropout or BatchNorm, two half batches give the full batch's gradient (1500 = 15 x 100)."""
    _fashion_mnist_or_skip()
    if not PY38.exists():
        pytest.skip(f"{PY38} is missing (see .ci/run)")
    same = ["backend=mxnet", "model=mlp", "model.dropout=0", "train.batch_size=100", f"target.python={PY38}"]
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    _, one = rehearse(tmp_path / "one", *same)
    _, two = rehearse(tmp_path / "two", *same, "target.instance_count=2")
    hps = json.loads((two / "algo-2" / "input" / "config" / "hyperparameters.json").read_text())
    assert hps["sagemaker_parameter_server_enabled"] == "true"
    single = json.loads((one / "output" / "data" / "metrics.json").read_text())["history"]
    for host in ("algo-1", "algo-2"):
        multi = json.loads((two / host / "output" / "data" / "metrics.json").read_text())["history"]
        # the same gradient up to summation order: losses agree closely; an accuracy may move by a
        # few borderline images out of 1,500 on CPUs whose kernels round differently
        for name in ("loss", "val_loss"):
            assert multi[name] == pytest.approx(single[name], abs=2e-3), name
        for name in ("acc", "val_acc"):
            assert multi[name] == pytest.approx(single[name], abs=5e-3), name
    assert (two / "algo-1" / "model" / "model-symbol.json").is_file()


def _start_tensorflow_hosts(folder, epochs: int) -> dict:
    """``train.py`` on hosts algo-1 and algo-2, as a two-instance job runs it, on loopback ports."""
    addresses = json.dumps({"algo-1": f"127.0.0.1:{free_port()}", "algo-2": f"127.0.0.1:{free_port()}"})
    procs = {}
    for host in ("algo-1", "algo-2"):
        env = {
            **os.environ,
            **HOSTS,
            "SM_CURRENT_HOST": host,
            "KX_HOST_ADDRESSES": addresses,
            "PYTHONUNBUFFERED": "1",
        }
        args = [
            sys.executable,
            str(PROJECT_DIR / "train.py"),
            "dataset=synthetic",
            "dataset.train_samples=6000",
            f"train.epochs={epochs}",
            "train.early_stopping.enabled=false",
            f"train.checkpoint_dir={host}/checkpoints",
            f"hydra.run.dir={host}/run",
            "tracking.enabled=false",
        ]
        procs[host] = subprocess.Popen(
            args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return procs


@pytest.mark.slow
def test_sigterm_on_one_host_stops_every_host_at_the_same_step_and_both_resume(tmp_path):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed")
    procs = _start_tensorflow_hosts(tmp_path, epochs=6)
    for line in procs["algo-2"].stdout:
        if "] - epoch 2 done" in line:  # the second host's line; the first host logs the metrics
            procs["algo-2"].send_signal(signal.SIGTERM)  # only the second host is told to stop
            break
    done = set()
    for host, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err
        assert "kx: error: Training stopped by SIGTERM after epoch" in err and "Traceback" not in err
        done.add(
            len(
                json.loads((tmp_path / host / "checkpoints" / "last" / "monitor.json").read_text())[
                    "history"
                ]["val_acc"]
            )
        )
    (completed,) = done  # both hosts stopped after the same epoch
    assert 2 <= completed < 6

    # restarted (a spot job resumes on every host), both pick up from their checkpoint and finish
    procs = _start_tensorflow_hosts(tmp_path, epochs=6)
    for host, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert f"after epoch {completed}" in out and "resuming from the checkpoint" in out
        metrics = json.loads((tmp_path / host / "run" / "metrics.json").read_text())
        assert metrics["epochs"] == 6 and metrics["history"]["loss"][-1] < metrics["history"]["loss"][0]
    assert (tmp_path / "algo-1" / "run" / "model" / "model" / "1").is_dir()
    assert not (tmp_path / "algo-2" / "run" / "model").exists()


def test_when_one_host_fails_the_rehearsal_stops_the_others_and_names_it(monkeypatch, tmp_path):
    monkeypatch.setattr(rehearsal, "STOP_GRACE_S", 0.2)
    blocked = "import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); print('up', flush=True); time.sleep(120)"
    procs = {
        "algo-1": subprocess.Popen([sys.executable, "-c", blocked], stdout=subprocess.PIPE, text=True),
        "algo-2": subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.exit(3)"], stdout=subprocess.PIPE, text=True
        ),
    }
    logs = {}
    files = {host: tmp_path / f"{host}.log" for host in procs}
    assert rehearsal._wait_all(procs, logs, files) == [("algo-2", 3), ("algo-1", -signal.SIGKILL)]
    assert logs["algo-1"] == ["up\n"] and files["algo-1"].read_text() == "up\n"


@pytest.mark.slow
def test_a_host_that_fails_mid_job_exits_instead_of_waiting_for_the_others(tmp_path):
    """MXNet's kvstore waits for every host at shutdown; the failed host must not (SageMaker stops
    the others only once one has exited)."""
    if importlib.util.find_spec("mxnet") is None:
        pytest.skip("mxnet is not installed")
    base = {**os.environ, **HOSTS, **rehearsal._parameter_server_env(2, free_port()), "PYTHONUNBUFFERED": "1"}
    helpers = [
        subprocess.Popen(
            [sys.executable, "-c", rehearsal.PARAMETER_SERVER_START],
            cwd=PROJECT_DIR,
            env={**base, "DMLC_ROLE": role},
        )
        for role in ("scheduler", "server", "server")
    ]
    # both hosts join; only the second one's config is wrong, which it finds once training starts
    procs = {
        host: subprocess.Popen(
            [
                sys.executable,
                str(PROJECT_DIR / "train.py"),
                "backend=mxnet",
                "dataset=synthetic",
                f"train.batch_size={batch}",
                f"hydra.run.dir={host}",
                "tracking.enabled=false",
            ],
            cwd=tmp_path,
            env={**base, "SM_CURRENT_HOST": host, "DMLC_ROLE": "worker"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for host, batch in (("algo-1", 100), ("algo-2", 99))
    }
    try:
        _, err = procs["algo-2"].communicate(timeout=120)
        assert procs["algo-2"].returncode == 2
        assert err.strip().startswith("kx: error: train.batch_size=99 does not split over 2 hosts")
    finally:
        for proc in [*procs.values(), *helpers]:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_stopping_a_rehearsal_stops_every_host_and_leaves_no_process(tmp_path):
    _fashion_mnist_or_skip()
    args = [
        "target=sagemaker_local",
        "target.instance_count=2",
        "dataset.limit=1500",
        "train.epochs=50",
        "train.early_stopping.enabled=false",
    ]
    proc = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "launch.py"), *guarded(args)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:
        if "] - epoch=1 " in line:
            proc.send_signal(signal.SIGTERM)  # as `aws sagemaker stop-training-job` would
            break
    _, err = proc.communicate(timeout=120)
    assert (
        proc.returncode == 1 and " Stopped: algo-" in err and "Training stopped by SIGTERM after epoch" in err
    )
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout
    assert leftover == ""
    (job,) = (
        p for p in (tmp_path / "outputs" / "sagemaker_local").iterdir() if p.name != "s3"
    )  # s3: the buckets
    for host in ("algo-1", "algo-2"):  # each host kept its last completed epoch, in a folder of its own
        assert (job / host / "checkpoints" / job.name / host / "last" / "monitor.json").is_file()
