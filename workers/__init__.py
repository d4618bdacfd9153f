"""Data plane: the Celery app, device backends, engines, the batching consumer and the pool."""
