"""Job functions, the queues that carry them, and the worker process."""
