"""Backends behind the interfaces in `core.stages`, one module per library."""
