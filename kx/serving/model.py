"""A served model: its contract, a loaded export, and the checks every request's images pass."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kx.errors import KxError
from kx.serving import contract as contracts
from kx.serving import loaders


class InputError(KxError):
    """A request's images do not match the model's contract; the message says what was expected."""


@dataclass
class ServedModel:
    contract: contracts.Contract
    format: str  # the export that was loaded: saved_model, mxnet or keras
    predict_input: loaders.Predict  # model input (float32, the model's layout) -> probabilities

    def expected(self) -> str:
        shape = ", ".join(str(d) for d in self.contract.raw_shape)
        return f"a batch of {self.contract.raw_dtype} images of shape (N, {shape})"

    def check(self, images: np.ndarray) -> np.ndarray:
        """``images`` as the dataset's own dtype, or :class:`InputError` naming what is wrong."""
        c, x = self.contract, images
        if x.dtype.kind not in "uif":
            raise InputError(f"images of dtype {x.dtype} are not numbers; expected {self.expected()}.")
        if x.size == 0:
            raise InputError(f"the batch is empty; expected {self.expected()} with N >= 1.")
        if x.shape[1:] != tuple(c.raw_shape) or x.ndim != len(c.raw_shape) + 1:
            raise InputError(f"images of shape {x.shape}; expected {self.expected()}.")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise InputError("images hold NaN or infinite values; expected finite pixel values.")
        whole = x.dtype.kind != "f" or bool((x == np.rint(x)).all())
        if c.raw_dtype == "uint8" and x.dtype != np.uint8 and not (whole and x.min() >= 0 and x.max() <= 255):
            raise InputError(
                f"pixel values must be whole numbers in [0, 255] (uint8), as the dataset "
                f"has them; got {x.dtype} values in [{x.min()}, {x.max()}]."
            )
        return x.astype(c.raw_dtype, copy=False)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) for a batch of the dataset's own images."""
        return self.predict_batch(self.check(np.asarray(images)))

    def predict_batch(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for images already :meth:`check`-ed."""
        return np.asarray(self.predict_input(self.contract.preprocess(images)), dtype=np.float32)


def load(model_dir: Path, fmt: str = "") -> ServedModel:
    """The model exported in ``model_dir`` (the folder holding its contract), in format ``fmt`` or the
    first that loads here."""
    contract = contracts.load(model_dir)
    name, predict = loaders.load(model_dir, contract.files, contract.backend, fmt)
    return ServedModel(contract, name, predict)
