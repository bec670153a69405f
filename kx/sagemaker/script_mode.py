"""SageMaker script mode: the container's ``--key value`` argv and ``SM_*`` environment as Hydra overrides.

SageMaker starts ``python train.py --train.learning_rate 0.01 --backend mxnet ...`` (the TensorFlow
framework adds ``--model_dir s3://...``; SDK versions since 2.110 JSON-encode values, so a string may
arrive as ``"adam"`` in quotes). Hydra wants ``train.learning_rate=0.01 backend=mxnet``. This module
translates, checks every key against the composed config, and maps the container's environment
(channels, model and output folders, GPUs) onto kx's config. Runs inside jobs: Python 3.8 syntax.
"""

import json
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from omegaconf import DictConfig

from kx.config.keys import CONFIG_GROUPS, PLAIN, hydra_value, nearest_keys, user_keys
from kx.data import channels, registry
from kx.errors import KxError

HYDRA_FLAGS = {
    "--multirun",
    "--help",
    "--hydra-help",
    "--cfg",
    "--resolve",
    "--package",
    "--run",
    "--config-path",
    "--config-name",
    "--config-dir",
    "--info",
    "--shell-completion",
    "--version",
    "--experimental-rerun",
}
_PYTHON_WORDS = {
    "True": True,
    "False": False,
    "inf": float("inf"),
    "-inf": float("-inf"),
    "nan": float("nan"),
}
CHANNELS = channels.NAMES  # what a file-backed (shipped) dataset reads in a job
# Hyperparameters the service adds and the toolkit keeps from the script (its SAGEMAKER_HYPERPARAMETERS,
# beside every ``sagemaker_*`` key): a tuning job adds ``_tuning_objective_metric`` to every trial.
RESERVED_KEYS = ("_tuning_objective_metric",)
CHECKPOINT_KEY = "train.checkpoint_dir"


class HyperparameterError(KxError):
    """A hyperparameter kx cannot use; the message names it and the nearest valid keys."""


class ChannelError(KxError):
    """The job lacks a data channel its dataset reads."""


def in_sagemaker(env: Mapping[str, str]) -> bool:
    """True inside a SageMaker training container (or kx's rehearsal of one)."""
    return "SM_TRAINING_ENV" in env or "SM_MODEL_DIR" in env


def is_script_mode(argv: Sequence[str]) -> bool:
    """True when ``argv`` uses SageMaker's ``--key value`` form rather than Hydra's ``key=value``."""
    return any(a.startswith("--") and a.split("=", 1)[0] not in HYDRA_FLAGS for a in argv)


def parse_hyperparameters(argv: Sequence[str]) -> Dict[str, str]:
    """``--a 1 --b=2`` -> ``{"a": "1", "b": "2"}``, in order."""
    hps: Dict[str, str] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--") or len(arg) == 2:
            raise HyperparameterError(
                f"Unexpected argument {arg!r}: SageMaker passes hyperparameters as `--key value` pairs."
            )
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if not args or args[0].startswith("--"):
                raise HyperparameterError(f"Hyperparameter --{key} has no value.")
            value = args.pop(0)
        hps[key] = value
    return hps


def decode_value(raw: str) -> str:
    """One hyperparameter value as Hydra override syntax (JSON strings/lists/booleans decoded)."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = _PYTHON_WORDS.get(raw, raw)  # how the toolkit writes decoded booleans and floats
    return hydra_value(value)


def encode_value(value: object) -> str:
    """A hyperparameter value that reaches train.py as ``value``.

    The toolkit JSON-decodes each value and puts ``str()`` of it on the command line (``None`` as an
    empty argument, ``True`` as ``True``, a list in Python's repr). Numbers, booleans and strings that
    read back as themselves travel as they are; ``None``, lists, dicts and strings that would read as
    another type travel as JSON text of JSON text, so the command line carries their JSON.
    """
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, str) and decode_value(value) == hydra_value(value):
        return value if PLAIN.match(value) else json.dumps(value)
    return json.dumps(json.dumps(value))


def check_keys(hps: Dict[str, str], cfg: DictConfig) -> None:
    """Raise :class:`HyperparameterError` for a key that is neither a group nor a config path."""
    known = set(user_keys(cfg))
    for key in hps:
        if key in known:
            continue
        close = nearest_keys(key, cfg)
        hint = (
            f"nearest valid keys: {', '.join(close)}"
            if close
            else "keys are config paths such as train.learning_rate"
        )
        raise HyperparameterError(f"Unknown hyperparameter --{key}; {hint}.")


def is_toolkit_key(key: str) -> bool:
    """True for a hyperparameter the service or the toolkit owns, never passed to train.py."""
    return key.startswith("sagemaker_") or key in RESERVED_KEYS


def split_toolkit_keys(hps: Dict[str, str]) -> Tuple[Dict[str, str], Optional[str]]:
    """Drop the SageMaker toolkit's and service's own keys; return the script's keys and ``--model_dir``."""
    model_dir = hps.get("model_dir")
    script = {k.replace("-", "_"): v for k, v in hps.items() if not is_toolkit_key(k) and k != "model_dir"}
    return script, model_dir


def toolkit_argument(raw: str) -> str:
    """What the toolkit puts on train.py's command line for the hyperparameter value ``raw``: its JSON
    decoded where it decodes, ``None`` as an empty argument, anything else as Python's ``str``."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return "" if value is None else str(value)


def job_value(raw: str) -> object:
    """The config value train.py gets in a job for the hyperparameter value ``raw``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (override,) = OverridesParser.create().parse_overrides([f"k={decode_value(toolkit_argument(raw))}"])
    return override.value()


def checkpoint_folder(raw: str, env: Mapping[str, str]) -> str:
    """The job's own checkpoint folder under ``train.checkpoint_dir``: ``<dir>/<job name>/<host>``.

    SageMaker copies everything under a job's ``CheckpointConfig.S3Uri`` into its checkpoint folder
    before it starts, and a tuning job gives every trial the same URI: kx writes under the job's name
    (a spot restart keeps it) and the host's, so no trial or host resumes another's checkpoints.
    """
    parts = [env.get("TRAINING_JOB_NAME"), env.get("SM_CURRENT_HOST")]
    return "/".join([raw.rstrip("/"), *(p for p in parts if p)])


def environment_overrides(env: Mapping[str, str], cfg: DictConfig, hps: Dict[str, str]) -> List[str]:
    """The container's folders and devices as overrides; explicit hyperparameters win."""
    wanted: Dict[str, Optional[str]] = {
        "export.model_dir": env.get("SM_MODEL_DIR"),
        "hydra.run.dir": env.get("SM_OUTPUT_DATA_DIR"),
        "backend.num_gpus": env.get("SM_NUM_GPUS"),
    }
    if registry.spec(cfg.dataset.name).shipped:
        # channels are /opt/ml/input/data/<name>/; kx reads training/ and validation/ below it
        wanted["dataset.channel_dir"] = str(Path(channel_dirs(env, cfg.dataset.name)[0]).parent)
    if not any(k.startswith("tracking.") for k in hps):
        wanted["tracking.enabled"] = "false"  # the job's results reach MLflow through launch.py
    return [f"{k}={decode_value(v)}" for k, v in wanted.items() if v is not None and k not in hps]


def channel_dirs(env: Mapping[str, str], dataset: str) -> List[str]:
    """The folders of the :data:`CHANNELS` a file-backed dataset reads; :class:`ChannelError` when
    the job lacks one."""
    missing = [name for name in CHANNELS if f"SM_CHANNEL_{name.upper()}" not in env]
    if missing:
        given = ", ".join(json.loads(env.get("SM_CHANNELS", "[]"))) or "none"
        raise ChannelError(
            f"dataset={dataset} reads the job's {' and '.join(CHANNELS)} channels, but "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing (the job has: {given}); give it the channels "
            "launch.py uploads, or choose dataset=digits or dataset=synthetic."
        )
    return [env[f"SM_CHANNEL_{name.upper()}"] for name in CHANNELS]


def hydra_argv(argv: Sequence[str], env: Mapping[str, str], compose_cfg) -> List[str]:
    """``argv`` (without the program) as Hydra overrides.

    ``compose_cfg(overrides)`` composes the config for those overrides; it is used to check keys
    and to see which fields the chosen dataset has. Plain Hydra usage passes through unchanged.
    """
    if not is_script_mode(argv):
        return list(argv)
    hps, model_dir = split_toolkit_keys(parse_hyperparameters(argv))
    groups = [f"{k}={decode_value(v)}" for k, v in hps.items() if k in CONFIG_GROUPS]
    cfg = compose_cfg(groups)
    check_keys(hps, cfg)
    if hps.get(CHECKPOINT_KEY) and in_sagemaker(env):
        hps[CHECKPOINT_KEY] = checkpoint_folder(hps[CHECKPOINT_KEY], env)
    overrides = groups + [
        f"{k}={decode_value(container_path(v, env))}" for k, v in hps.items() if k not in CONFIG_GROUPS
    ]
    if model_dir and not model_dir.startswith("s3://") and "SM_MODEL_DIR" not in env:
        overrides.append(f"export.model_dir={hydra_value(model_dir)}")
    check_values(overrides, compose_cfg)
    if in_sagemaker(env):
        overrides += environment_overrides(env, cfg, hps)
    return overrides


def check_values(overrides: List[str], compose_cfg) -> None:
    """Compose the whole config once, so that a malformed value fails here as one line
    (``compose`` raises :class:`kx.config.ConfigError` naming the value and what is allowed)."""
    compose_cfg(overrides)


def container_path(raw: str, env: Mapping[str, str]) -> str:
    """A value naming a path in /opt/ml, moved to where ``SAGEMAKER_BASE_DIR`` puts /opt/ml (the
    toolkit's setting for running outside SageMaker, as the rehearsal does); unchanged in a job."""
    base = env.get("SAGEMAKER_BASE_DIR")
    return base + raw[len("/opt/ml") :] if base and raw.startswith("/opt/ml/") else raw


def write_failure(message: str, env: Mapping[str, str]) -> Optional[Path]:
    """Write ``message`` where SageMaker reads a job's FailureReason (``/opt/ml/output/failure``)."""
    if not in_sagemaker(env):
        return None
    output = Path(env.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure").write_text(message[:1024])
    except OSError:
        return None
    return output / "failure"
