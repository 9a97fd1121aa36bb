"""Offline tools, never loaded by a worker: model fetching, corpus building, training and
evaluation."""


class DataError(ValueError):
    """Data a tool cannot use (a training row, a clip, a ground-truth file); the message names
    the line or file and why."""
