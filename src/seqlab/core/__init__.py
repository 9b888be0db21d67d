"""What every stage runs: typed params.yaml, errors, paths, storage, seeding, plots and CSV, checkpoints (and
rebuilding a model from one), the Task contract and the task registry. Imports nothing above it."""
