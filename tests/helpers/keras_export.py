"""A small Keras model with kx's layers trained, checkpointed and exported, then its export loaded
in plain Keras (a fresh process without kx): what the tests of kx's own layers check."""

import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from tests.helpers.processes import run_script

ROUND_TRIP = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np
from kx.models import conv_batch_norm, fused_batch_norm, winograd

folder, shape = sys.argv[1], tuple(json.loads(sys.argv[2]))
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input(shape), *LAYERS, keras.layers.Flatten(), keras.layers.Dense(2)])
model.compile(optimizer="sgd", loss="mse")
state = np.random.RandomState(0)
history = model.fit(state.rand(64, *shape), state.rand(64, 2), epochs=3, verbose=0).history["loss"]
model.save(folder + "/checkpoint.keras")
conv_batch_norm.portable(model).save(folder + "/export.keras")
probe = state.rand(5, *shape).astype("float32")
np.save(folder + "/probe.npy", probe)
np.save(folder + "/expected.npy", model.predict(probe, verbose=0))
resumed = keras.saving.load_model(folder + "/checkpoint.keras")
print(json.dumps({"loss": history, "layers": [type(layer).__name__ for layer in resumed.layers],
                  "resumed_gap": float(np.max(np.abs(resumed.predict(probe, verbose=0) - np.load(folder + "/expected.npy"))))}))
"""

PLAIN_LOAD = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras
import numpy as np
model = keras.saving.load_model(sys.argv[1] + "/" + sys.argv[2])
expected = np.load(sys.argv[1] + "/expected.npy")
got = model.predict(np.load(sys.argv[1] + "/probe.npy"), verbose=0)
print(json.dumps({"layers": [type(layer).__name__ for layer in model.layers],
                  "gap": float(np.max(np.abs(got - expected)) / max(1.0, np.max(np.abs(expected)))),
                  "kx_imported": any(name.startswith("kx") for name in sys.modules)}))
"""


def round_trip(
    folder: Path, shape: Sequence[int], layers: str, env: Optional[Dict[str, str]] = None
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Train a model of ``layers`` (a Python list expression over ``keras``, ``conv_batch_norm``,
    ``fused_batch_norm`` and ``winograd``) on inputs of ``shape`` in ``folder``; its history, its resumed checkpoint's layers
    and gap, and what :func:`plain_load` finds of its export."""
    code = ROUND_TRIP.replace("LAYERS", layers)
    trained = run_script(code, str(folder), json.dumps(list(shape)), env=env)
    return trained, plain_load(folder, "export.keras")


def plain_load(folder: Path, name: str) -> Dict[str, Any]:
    """``folder/name`` loaded in plain Keras: its layers' classes, its predictions' gap to
    ``expected.npy`` on ``probe.npy`` (relative to their largest, at least 1), and whether kx was
    imported."""
    return run_script(PLAIN_LOAD, str(folder), name)
