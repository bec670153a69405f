"""kx: config-driven Keras-style experiments on several backends, locally or on SageMaker."""

__version__ = "0.1.0"
