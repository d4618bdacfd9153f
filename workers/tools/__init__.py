"""Tools run by hand on a worker machine, not part of serving: engine benchmarks and the accelerator check."""
