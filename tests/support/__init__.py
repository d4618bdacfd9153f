"""Real services and processes for the tests: Redis, SeaweedFS (S3), Prometheus, voxfarm processes."""
