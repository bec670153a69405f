"""Hyperparameter sweeps: the sweep file's schema and its search space, shared by every tuner.

A sweep file (``conf/sweep/<name>.yaml``, chosen with ``sweep=<name>``) is the one contract between
kx's local tuner (Optuna, a Hydra sweeper plugin) and SageMaker tuning jobs (``launch.py``): its
search space in Hydra's override grammar, the objective, the budget, the sampler and the pruner.
"""
