"""Code used by both the control plane (producer) and the data plane (workers)."""
