"""What a run leaves in its output folder: resolved config, metrics.json and plots."""
