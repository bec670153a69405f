"""Train one backend on a small real dataset through kx's Backend API, export, reload, compare.

Run as a script (one process per backend: Keras picks its engine once per process):
    python tests/backend_check.py BACKEND OUT_DIR [override ...]
Prints one JSON line: the history, the trained model's and the reloaded export's predictions.
"""

import json
import sys
from pathlib import Path

import numpy as np

from kx._compat import NUMPY_ALIASES
from kx.backends import EpochMonitor, create_backend
from kx.backends.checkpoint import Checkpoint
from kx.config import objective
from kx.data.loading import load_dataset
from kx.run_config import compose, validate
from kx.serving import loaders


def main(backend_name: str, out_dir: str, *overrides: str) -> None:
    cfg = compose(
        [f"backend={backend_name}", "dataset=digits", "train.epochs=6", "train.batch_size=16", *overrides]
    )
    validate(cfg)
    backend = create_backend(cfg.backend)
    backend.prepare(cfg.train.seed, cfg.train.deterministic)
    data = load_dataset(cfg.dataset, backend.image_layout, cfg.train.seed)
    backend.build(cfg.model, data.input_shape, data.num_classes)
    monitor = EpochMonitor(objective(cfg), patience=cfg.train.early_stopping.patience)
    backend.fit(data, cfg.train, monitor, Checkpoint(None))
    trained = backend.predict(data.x_val)
    model_dir = Path(out_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    files = backend.export(model_dir, "model", 1)
    reloaded = reload(backend_name, model_dir)(data.x_val)
    print(
        json.dumps(
            {
                "layout": data.layout,
                "input_shape": list(data.input_shape),
                "history": monitor.history,
                "best_val_acc": monitor.best()["val_acc"],
                "trained_classes": trained.argmax(1).tolist(),
                "reloaded_classes": reloaded.argmax(1).tolist(),
                "max_prob_diff": float(abs(trained - reloaded).max()),
                "labels": data.y_val.tolist(),
                "numpy_aliases": [alias for alias in NUMPY_ALIASES if alias in np.__dict__],
                "files": sorted(str(Path(f).relative_to(model_dir)) for f in files),
            }
        )
    )


def reload(backend_name: str, model_dir: Path) -> loaders.Predict:
    """What the backend's export wrote, loaded as a server loads it (``model`` version 1)."""
    if backend_name == "mxnet":
        return loaders.mxnet_symbol(model_dir / "model")
    if backend_name in ("tensorflow", "jax"):
        return loaders.saved_model(model_dir / "model" / "1")
    return loaders.keras_file(model_dir / "model.keras", backend_name)


if __name__ == "__main__":
    main(*sys.argv[1:])
