"""`voxfarm status` and `voxfarm watch`: the ledger, read for people."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm import tqdm

from shared.errors import VoxfarmError
from shared.ledger import JobState, JobStatus, Ledger


def describe(status: JobStatus) -> str:
    lines = [
        f"job       {status.job}",
        f"title     {status.title}",
        f"state     {status.state}",
        f"segments  {status.done}/{status.total} done ({status.reused} reused, "
        f"{max(status.done - status.reused, 0)} rendered, {len(status.failed)} failed)",
    ]
    retries = status.meta.get("retries")
    if retries:
        lines.append(f"retries   {retries}")
    flagged = int(status.meta.get("quality_flagged", 0) or 0)
    if flagged:
        lines.append(
            f"quality   {flagged} segments kept after failing the quality gate on every take "
            "(findings per chapter in manifest.json)"
        )
    for index, failure in sorted(status.failed.items())[:20]:
        lines.append(
            f"  failed segment {index}: {failure.get('reason', '?')} (attempts {failure.get('attempts', '?')})"
        )
    if len(status.failed) > 20:
        lines.append(f"  ... and {len(status.failed) - 20} more")
    if status.meta.get("error"):
        lines.append(f"error     {status.meta['error']}")
    return "\n".join(lines)


def watch(
    ledger: Ledger,
    job: str,
    *,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
    show: bool = True,
    alive: Callable[[], None] | None = None,
) -> JobStatus:
    """Follow a job until it is done or failed, with a progress bar and ETA."""
    status = ledger.status(job)
    started = time.monotonic()
    bar = tqdm(
        total=status.total,
        initial=status.done,
        unit="seg",
        desc=job[:32],
        disable=not show or (not sys.stderr.isatty() and show is not True),
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        while True:
            if status.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED):
                bar.n = status.done
                bar.refresh()
                return status
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                raise VoxfarmError(f"job {job} did not finish within {timeout_s:.0f}s (state {status.state})")
            if alive is not None:
                alive()
            time.sleep(poll_s)
            status = ledger.status(job)
            bar.n = status.done
            bar.set_postfix_str(status.state, refresh=False)
            bar.refresh()
    finally:
        bar.close()
