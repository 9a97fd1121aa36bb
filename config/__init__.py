"""Settings, and the one place that wires concrete classes together."""
