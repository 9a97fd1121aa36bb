"""Offline tools, never loaded by a worker: model fetching, corpus building, training and
evaluation."""
