"""Train one kx experiment: `python train.py [group=option ...] [key=value ...]`.

`python train.py --help` lists the config groups and options; `-m` sweeps, over a grid of
comma-separated values or a sweep file tuned with Optuna (`-m sweep=quick`), each trial a process of
its own and an MLflow child run of one sweep run. Inside a SageMaker training container the same
script takes the container's `--key value` hyperparameters and `SM_*` environment.
"""

import os
import sys
from pathlib import Path
from typing import Any, List, NoReturn, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig

from kx import process, train_cli
from kx.backends.cluster import on_several_hosts
from kx.errors import KxError, one_line
from kx.run_config import compose, register
from kx.sagemaker import script_mode

register()


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr (and, in a SageMaker job, as its FailureReason); exit ``code``."""
    print(f"kx: error: {message}", file=sys.stderr)
    script_mode.write_failure(message, os.environ)
    sys.exit(code)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from kx.stopping import Stopped, TrainingInterrupted, sigterm_stops

    hydra_cfg = HydraConfig.get()
    try:
        with sigterm_stops():
            from kx.pipeline import run

            return run(cfg, Path(hydra_cfg.runtime.output_dir), observers(list(hydra_cfg.overrides.task)))
    except TrainingInterrupted as err:
        fail(str(err), err.exit_code)
    except KxError as err:
        fail(str(err))
    except Stopped:
        fail(f"Stopped by SIGTERM; what was written so far is in {hydra_cfg.runtime.output_dir}.")
    except KeyboardInterrupt:
        fail(
            f"Stopped by SIGINT (Ctrl-C); what was written so far is in {hydra_cfg.runtime.output_dir}.", 130
        )


def observers(overrides: List[str]) -> List[Any]:
    """What a run reports to: the export's contract, its MLflow run and, in a sweep, its trial
    (imported here, not at the top, so that --help and --cfg job stay fast)."""
    from kx.serving.contract_observer import ContractWriter
    from kx.sweep.trial import TrialObserver, run_identity
    from kx.tracking.observer import TrackingObserver

    return [ContractWriter(), TrackingObserver(overrides, run_identity(), log_model), TrialObserver()]


def log_model(run: Any, model_dir: Path, example: Any, register_as: Optional[str]) -> Optional[str]:
    """The run's model as an MLflow Model (:func:`kx.serving.mlflow_model.log_model`), imported only
    when a tracked run logs one: it imports MLflow, which SageMaker's images do not have."""
    from kx.serving.mlflow_model import log_model as log_mlflow_model

    return log_mlflow_model(run, model_dir, example, register_as)


def leave_at_once_on_failure() -> None:
    """Run :func:`main`. When it fails on one host of several, exit at once: the engines' shutdown
    (MXNet's kvstore, TensorFlow's collectives) would wait for the other hosts forever, and SageMaker
    stops the others only once this one has exited."""
    try:
        main()
    except SystemExit as done:
        if done.code and on_several_hosts(os.environ):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(done.code if isinstance(done.code, int) else 1)
        raise


def checked_argv(argv: List[str]) -> List[str]:
    """The command line Hydra gets (a SageMaker job's hyperparameters turned into overrides); bad
    overrides, values or output folder end here in one line, exit 2, and no run folder."""
    try:
        argv = script_mode.hydra_argv(argv, os.environ, compose)
        train_cli.check_argv(argv)
    except (KxError, HydraException) as err:
        fail(one_line(err))
    return argv


if __name__ == "__main__":
    process.quiet_libraries()
    sys.argv[1:] = checked_argv(sys.argv[1:])
    leave_at_once_on_failure()
