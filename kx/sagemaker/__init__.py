"""Amazon SageMaker: script mode inside the training containers, and the jobs launch.py submits.

Only :mod:`kx.sagemaker.script_mode` runs inside jobs (Python 3.8); the rest runs where
launch.py runs and imports the SageMaker SDK lazily.
"""
