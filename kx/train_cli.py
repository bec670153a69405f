"""What train.py checks before Hydra starts a run: the overrides, the values and the output folder.

Hydra creates the run's folder before the task starts and reports its own errors in several lines
with exit code 1. kx composes the same config first, so a typo, a wrong type, an unknown option, an
out-of-range value, or an output or checkpoint folder that is empty or cannot be created is one ``kx: error:`` line, exit
code 2, and leaves no run folder behind. Runs inside SageMaker jobs: Python 3.8 syntax.
"""

import argparse
import contextlib
from pathlib import Path
from typing import List, Optional, Sequence

from omegaconf import DictConfig

from kx._compat import hydra_args
from kx.config.errors import check_options
from kx.config.validate import ConfigError
from kx.run_config import compose, validate

_NO_RUN = (
    "help",
    "hydra_help",
    "info",
    "shell_completion",
    "config_path",
    "config_name",
    "config_dir",
    "experimental_rerun",
)


def representative(overrides: Sequence[str]) -> List[str]:
    """Overrides with each sweep (``a=1,2``, ``range(..)``) replaced by its first value; an
    ``interval(..)`` (which only a sweeper samples) is left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    chosen: List[str] = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if not override.is_sweep_override():
            chosen.append(override.input_line)
            continue
        try:
            values = list(override.sweep_string_iterator())
        except Exception:  # noqa: BLE001 - an interval sweep has no first value
            continue
        check_options(override.key_or_group, values)
        first = values[0]
        chosen.append(f"{override.get_key_element()}={first}")
    return chosen


def probe_folder(folder: Path, setting: str, what: str = "the run's output folder") -> None:
    """Raise :class:`ConfigError` unless ``folder`` can be created; leave nothing new behind."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".kx-write-probe"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"Cannot write {what} {setting}={folder} ({err.strerror}); "
            f"choose a writable folder with {setting}=DIR."
        ) from None
    finally:
        for created in missing:
            with contextlib.suppress(OSError):
                created.rmdir()


def check_argv(argv: Sequence[str]) -> Optional[DictConfig]:
    """Compose, validate and check the output folder of the run ``argv`` asks for, as Hydra will;
    raise :class:`kx.errors.KxError` (one line) when it cannot run. Return the composed config, or
    None when ``argv`` runs nothing of kx's own (``--help``, ``--info``, another config)."""
    args = hydra_args(argv)
    if not (args.help or args.hydra_help):  # Hydra prints its help first
        check_one_mode(args)
    if any(getattr(args, flag) for flag in _NO_RUN):
        return None
    cfg = compose(representative(args.overrides) if args.multirun else args.overrides, with_hydra=True)
    validate(cfg)
    if not args.cfg:
        setting = "hydra.sweep.dir" if args.multirun else "hydra.run.dir"
        probe_folder(
            output_folder(cfg.hydra.sweep.dir if args.multirun else cfg.hydra.run.dir, setting), setting
        )
        if cfg.train.checkpoint_dir:
            probe_folder(Path(cfg.train.checkpoint_dir), "train.checkpoint_dir", "the checkpoint folder")
    return cfg


def check_one_mode(args: argparse.Namespace) -> None:
    """Refuse two of Hydra's modes at once (``-m`` with ``--cfg job``), which Hydra ends in a traceback."""
    modes = {
        "--run": args.run,
        "--multirun": args.multirun,
        "--cfg": args.cfg is not None,
        "--info": args.info is not None,
        "--shell-completion": args.shell_completion,
    }
    chosen = [flag for flag, on in modes.items() if on]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)} given together: choose one of {', '.join(modes)}.")


def output_folder(value: Optional[str], setting: str) -> Path:
    """The run's output folder; an empty one would scatter the run's files into the working folder."""
    if not value or not str(value).strip():
        raise ConfigError(
            f"{setting} is empty: the run's files would land in the working folder; "
            f"give a folder, e.g. {setting}=outputs/NAME."
        )
    return Path(value)
