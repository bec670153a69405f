"""Train one kx experiment: `python train.py [group=option ...] [key=value ...]`.

`python train.py --help` lists the config groups and options; `-m` sweeps over comma-separated
values, each job an MLflow child run of one sweep run.
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from kx.config import register
from kx.errors import KxError

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from kx.pipeline import run

    hydra_cfg = HydraConfig.get()
    try:
        return run(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))
    except KxError as err:
        print(f"kx: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
