"""The `voxfarm` command line.

Every subcommand turns a VoxfarmError into one line on stderr and its exit
code (2 bad input, 3 retryable/unreachable, 70 fatal); a traceback means a
bug.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.errors import VoxfarmError
from shared.logs import configure_logging
from shared.settings import Settings, load_settings

log = logging.getLogger("voxfarm")

BENCH_COST = """Padding efficiency, batch sweep and end-to-end speed on this machine.

What it costs (figures from 2 shared CPU cores):
  (a) padding: the whole --padding-book is planned (a few seconds per
      thousand segments), then the voice's duration stage runs over a
      seeded sample of --padding-sample segments (about 60 ms each: the
      default 2000 take about two minutes, whatever the book's length;
      0 measures every segment: seven minutes for a 6,800-segment book);
  (b) batch sweep: --min-seconds per bucket and batch size (25 points by
      default: about 30 s);
  (c) end to end: each of --repeats renders chapter --chapter three times
      (the piper CLI, one engine thread, the local farm): about a sixth of
      the chapter's speech length per repeat, plus the farm's start.

--admission measures the control plane instead (nothing is synthesised):
a synthetic book of --segments utterances is planned (about a minute per
20,000 here), submitted, and admitted by the dispatcher, on a private
Redis and the configured storage (else a temporary folder): a few seconds.

With --engine-standin it measures the farm's own cost instead: a whole
novel (default: Frankenstein, from tests/corpus) through the embedded farm
with a stand-in engine that answers at once with real speech, printing
segments per second and CPU milliseconds per segment by part. It replaces
(a) to (c); planning the book takes a minute, the run itself seconds.
"""


def _book_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("book", type=Path, help="EPUB, Markdown, HTML, plain text or JSONL utterance file")
    parser.add_argument("--voice", help="voice id (default: VOXFARM_VOICE or en_US-joe-medium)")
    parser.add_argument("--engine", help="engine id (default: VOXFARM_ENGINE or piper-onnx)")
    parser.add_argument("--chapters", help="chapters to read, 1-based, e.g. 1-3,5")
    parser.add_argument("--include-matter", action="store_true", help="also read front and back matter")
    parser.add_argument("--lexicon", type=Path, help="pronunciation lexicon file")
    parser.add_argument("--job", help="job id (default: derived from the title and content)")
    parser.add_argument("--no-titles", action="store_true", help="do not speak chapter titles")
    parser.add_argument("--length-scale", type=float, help="speaking rate: >1 slower, <1 faster")
    parser.add_argument("--noise-scale", type=float, help="voice variation (0 = deterministic)")
    parser.add_argument("--noise-w", type=float, help="timing variation (0 = deterministic)")
    parser.add_argument(
        "--cast",
        type=Path,
        metavar="FILE",
        help="cast file (TOML): voices of narrator, dialogue, characters, languages",
    )


def _priority(value: str) -> int | str:
    """A number from 0 to 100, or (as before) the lane: bulk or interactive."""
    if value in ("bulk", "interactive"):
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid priority {value!r}: use 0-100, bulk or interactive") from None


def _scheduling_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scheduling")
    group.add_argument("--tenant", default="default", help="who the job is for: its share of the farm (default)")
    group.add_argument("--priority", type=_priority, default=50, help="0-100, higher first (50)")
    group.add_argument("--lane", choices=["bulk", "interactive"], help="interactive: the short-request lane")


def _assembly_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("assembly (defaults from VOXFARM_* settings)")
    group.add_argument("--chapter-format", choices=["flac", "wav", "mp3", "opus"], help="chapter files (flac)")
    group.add_argument("--book-format", choices=["m4b", "none"], help="the whole book in one file (m4b)")
    group.add_argument("--loudness", type=float, metavar="LUFS", help="loudness target per chapter (-18)")
    group.add_argument("--true-peak", type=float, metavar="DBTP", help="true-peak ceiling (-1)")
    group.add_argument("--subtitles", choices=["none", "srt", "vtt", "both"], help="subtitles per chapter (none)")
    group.add_argument(
        "--subtitle-speakers", action="store_true", default=None, help="cues of attributed quotations name the speaker"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxfarm", description="Distributed text-to-speech render farm.")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default INFO)")
    parser.add_argument("--log-json", action="store_true", default=None, help="JSON log lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = sub.add_parser("plan", help="show chapters and segments without rendering")
    _book_arguments(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable output (plan.schema.json)")

    submit = sub.add_parser("submit", help="submit a book to the farm and print its job id")
    _book_arguments(submit)
    _assembly_arguments(submit)
    _scheduling_arguments(submit)
    submit.add_argument("--wait", action="store_true", help="follow the job until it finishes")
    submit.add_argument("--json", action="store_true")

    render = sub.add_parser("render", help="render a book into a folder (embedded farm when nothing is configured)")
    _book_arguments(render)
    _assembly_arguments(render)
    render.add_argument("-o", "--output", type=Path, required=True, help="folder for chapter files and manifest.json")
    render.add_argument("--workers", type=int, help="local worker processes (default: one per CPU core)")

    jobs = sub.add_parser("jobs", help="list the jobs in the ledger with their state and progress")
    jobs.add_argument("--json", action="store_true")

    status = sub.add_parser("status", help="progress, reuse and failures of a job")
    status.add_argument("job")
    status.add_argument("--json", action="store_true")

    watch = sub.add_parser("watch", help="follow a job with a progress bar until it finishes")
    watch.add_argument("job")
    watch.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")

    resume = sub.add_parser(
        "resume", help="let a job go on: unpause it, and re-dispatch what it lost (a lost broker, dead workers)"
    )
    resume.add_argument("job")
    resume.add_argument("--force", action="store_true", help="also re-dispatch segments that may still be in flight")
    resume.add_argument("--json", action="store_true")

    pause = sub.add_parser("pause", help="dispatch nothing more of a job until `voxfarm resume JOB`")
    pause.add_argument("job")
    cancel = sub.add_parser("cancel", help="stop a job for good; what is stored stays and a resubmission reuses it")
    cancel.add_argument("job")
    priority = sub.add_parser("priority", help="change a job's priority (0-100, higher first)")
    priority.add_argument("job")
    priority.add_argument("priority", type=int)

    tenants = sub.add_parser("tenants", help="list tenants with their share weights and quotas")
    tenants.add_argument("--json", action="store_true")
    tenant_sub = tenants.add_subparsers(dest="tenants_command", metavar="set")
    tenant_set = tenant_sub.add_parser("set", help="create or change a tenant")
    tenant_set.add_argument("name")
    tenant_set.add_argument("--weight", type=float, help="share of the farm relative to other tenants (default 1)")
    tenant_set.add_argument("--quota", type=int, help="most segments in flight at once (0 = no limit)")

    download = sub.add_parser("download", help="copy a finished job's files into a folder")
    download.add_argument("job")
    download.add_argument("-o", "--output", type=Path, required=True)

    worker = sub.add_parser("worker", help="run one worker pinned to one device")
    worker.add_argument("--device", default="cpu", help="cpu, cpu:N, cuda:N, npu:N, dcu:N, mlu:N, xpu:N")
    worker.add_argument("--engine")
    worker.add_argument("--voice", help="the voice to serve (qwen3-tts: any voice of the checkpoint to serve)")
    worker.add_argument("--model", help="qwen3-tts: the checkpoint to serve (default: the --voice's checkpoint)")
    worker.add_argument("--metrics-port", type=int, help="port for /metrics, /healthz, /readyz (0 = any free port)")
    worker.add_argument("--ready-file", type=Path, help="file created once warm-up has finished")
    worker.add_argument("--hostname", help="Celery hostname (default: voxfarm-<family><card>-<pid>@<host>)")
    worker.add_argument("--warmup-only", action="store_true", help="fill the compile and tuning caches, then exit")
    worker.add_argument("--concurrency", type=int, help="messages held at once (default: twice the largest batch)")

    pool = sub.add_parser("pool", help="run one worker per card and restart the ones that die")
    pool.add_argument("--devices", required=True, help="cuda:0-7, npu:all, cpu:4, ...")
    pool.add_argument("--engine")
    pool.add_argument("--voice")
    pool.add_argument("--metrics-port", type=int, help="first worker's metrics port; worker i gets port + i")
    pool.add_argument("--health-port", type=int, default=9299, help="the pool's own /healthz and /readyz")
    pool.add_argument("--ready-dir", type=Path, help="folder for the workers' ready files")
    pool.add_argument("--grace", type=float, help="seconds a worker may take to drain on SIGTERM")

    control = sub.add_parser("control", help="run the control service (assembly on voxfarm.control)")
    control.add_argument("--concurrency", type=int, default=2)
    control.add_argument("--metrics-port", type=int, default=9400, help="metrics port (0 = any free port, -1 = off)")

    from producer.cast_command import add_cast_parser
    from producer.qwen_voices import add_voice_parsers

    add_voice_parsers(sub)
    add_cast_parser(sub)

    from producer.api_commands import add_api_parsers

    add_api_parsers(sub)

    bench = sub.add_parser(
        "bench",
        help="padding efficiency, batch sweep and end-to-end speed on this machine",
        description=BENCH_COST,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--book", type=Path, help="book for the end-to-end run (default: the bundled sample)")
    bench.add_argument("--chapter", type=int, default=1, help="1-based chapter rendered end to end (default 1)")
    bench.add_argument("--padding-book", type=Path, help="book whose sentences measure padding (default: --book)")
    bench.add_argument("--padding-batch", type=int, default=16, help="batch size for the padding comparison")
    bench.add_argument(
        "--padding-sample",
        type=int,
        default=2000,
        metavar="N",
        help="segments whose frames are measured, in seeded runs of 200 consecutive ones; 0 = all (default 2000)",
    )
    bench.add_argument("--padding-seed", type=int, default=1, help="seed of the padding sample (default 1)")
    bench.add_argument("--sweep-edges", default="32,64,128,256,512", help="buckets of the batch sweep")
    bench.add_argument("--sweep-sizes", default="1,2,4,8,16", help="batch sizes of the batch sweep")
    bench.add_argument("--repeats", type=int, default=3, help="end-to-end repeats (the median is reported)")
    bench.add_argument("--workers", type=int, help="local workers for the end-to-end run (default: one per core)")
    bench.add_argument("--min-seconds", type=float, default=1.0, help="time spent per sweep point")
    bench.add_argument(
        "--json",
        type=Path,
        help="also write the figures to this file (bench.schema.json; --admission: its own figures)",
    )
    bench.add_argument(
        "--admission", action="store_true", help="time planning, submit and dispatcher admission of a big book instead"
    )
    bench.add_argument("--segments", type=int, default=20_000, help="size of the --admission book (default 20000)")
    bench.add_argument("--window", type=int, help="--admission steady-state window per queue (VOXFARM_DISPATCH_WINDOW)")
    bench.add_argument(
        "--engine-standin",
        action="store_true",
        help="measure the farm's own cost per segment on a whole book with an instant stand-in engine",
    )
    bench.add_argument(
        "--unit-segments",
        type=int,
        metavar="N",
        default=32,
        help="with --engine-standin: segments per message (default 32)",
    )
    bench.add_argument(
        "--upload-processes",
        type=int,
        default=0,
        metavar="N",
        help="with --engine-standin: processes per worker that check, encode and store takes (default 0)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_json)
    try:
        settings = load_settings()
        return int(_dispatch(args, settings) or 0)
    except VoxfarmError as exc:
        print(f"voxfarm: error: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):
            print(note, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("voxfarm: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from producer import api_commands, commands

    handlers: dict[str, Any] = {
        "plan": commands.plan,
        "submit": commands.submit,
        "render": commands.render,
        "status": commands.status,
        "jobs": commands.jobs,
        "watch": commands.watch_job,
        "download": commands.download,
        "resume": commands.resume,
        "pause": commands.pause,
        "cancel": commands.cancel,
        "priority": commands.priority,
        "tenants": commands.tenants,
        "worker": commands.worker,
        "control": commands.control,
        "pool": commands.pool,
        "bench": commands.bench,
        "voices": commands.voices,
        "models": commands.models,
        "cast": commands.cast,
        "api": api_commands.api,
        "serve": api_commands.serve,
        "tokens": api_commands.tokens,
    }
    return int(handlers[args.command](args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
