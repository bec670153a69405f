"""The trained model's own validation probabilities, computed apart from kx's serving code.

``python tests/helpers/reference.py RUN_FOLDER TRACKING_URI OUT.npz`` loads the run's model with its
training framework (Keras's ``.keras`` file on the run's engine, or MXNet's Gluon ``SymbolBlock``) and
predicts the validation set as training prepared it; it also loads the run's MLflow Model with
``mlflow.pyfunc`` and predicts the validation images as the dataset has them. It saves both, with those
images and their labels.
"""

import os
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf


def native(run: Path, engine: str, x: np.ndarray) -> np.ndarray:
    if engine == "mxnet":
        from kx._compat import import_mxnet  # numpy aliases MXNet 1.9 needs

        mx = import_mxnet()
        prefix = run / "model" / "model"
        block = mx.gluon.nn.SymbolBlock.imports(f"{prefix}-symbol.json", ["data"], f"{prefix}-0000.params")
        return block(mx.nd.array(x)).asnumpy()
    os.environ["KERAS_BACKEND"] = engine
    import keras

    return np.asarray(keras.saving.load_model(run / "model" / "model.keras").predict(x, verbose=0))


def main(run: Path, tracking_uri: str, out: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from kx.data.loading import load_dataset

    cfg = OmegaConf.load(run / "config.yaml")
    data = load_dataset(cfg.dataset, str(cfg.backend.image_layout), cfg.train.seed)
    trained = native(run, cfg.backend.name, data.x_val)
    (found,) = MlflowClient(tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri).search_experiments()],
        filter_string=f"tags.`kx.output_dir` = '{run}'",
    )
    mlflow.set_tracking_uri(tracking_uri)
    raw = data.raw_images(data.x_val)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{found.info.run_id}/model").predict(raw)
    np.savez(out, trained=trained, pyfunc=pyfunc, raw=raw, labels=data.y_val, run_id=found.info.run_id)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
