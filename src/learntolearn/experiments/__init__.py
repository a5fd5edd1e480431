"""Experiments: configs with stable keys, the registry, the method and task-family tables, the
runner, training loop, results store and provenance."""
