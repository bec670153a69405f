"""Serving exported kx models: the model contract, loaders per export format, an HTTP server, clients.

Only :mod:`kx.serving.contract` runs inside training jobs (Python 3.8 too); the rest serves.
"""
