"""Control plane: ingest, plan, submit, follow, assemble; the `voxfarm` command line."""
