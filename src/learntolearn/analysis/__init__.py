"""Measurements of trained (or untrained) methods: statistics over test tasks, meta-gradient
diagnostics, update directions, feature reuse."""
