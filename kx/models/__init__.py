"""Networks built from an import path: the user's own, and kx's built-in architectures.

``model.builder`` names a function ``build(input_shape, num_classes, **model.kwargs)`` returning a
Keras model (for backend=tensorflow, jax, torch); ``model.gluon_builder`` one returning a Gluon
``HybridBlock`` (for backend=mxnet). The built-in ``resnet`` and ``separable`` models are builders
too (:mod:`kx.models.resnet`, :mod:`kx.models.separable`), declared in ``conf/model/``.
"""
