"""`voxfarm bench`: the figures the farm is judged by, measured side by side in one run.

(a) Padding efficiency (``padding``, ``sentences``): the book's real sentence
    lengths (tokens from the frontend, frames from the voice's own duration
    predictor, over a seeded sample of the book's sentences) batched by
    bucket, the way a worker forms batches, against first-in-first-out
    batching of the same sentences.
(b) Batch sweep (``sweep``): throughput and latency per batch size per
    bucket on the local device.
(c) End to end (``e2e``): a chapter rendered through Redis, worker processes
    and storage, against the `piper` command line on the same text and
    voice, and against the ideal (cores x the engine's own single-thread
    speed), all in the same run, because these machines are shared and noisy.

The benchmark drives the producer (ingest, planner, submit, the embedded
farm) and the workers' engines, so it lives on the producer side: workers
never import the producer.
"""

from producer.bench.report import format_table
from producer.bench.run import BenchOptions, run_bench

__all__ = ["BenchOptions", "format_table", "run_bench"]
