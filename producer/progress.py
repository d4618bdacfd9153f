"""`voxfarm status` and `voxfarm watch`: the ledger, read for people."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm import tqdm

from producer.submit import group_by_key, plan_stored_keys
from shared.errors import VoxfarmError
from shared.ledger import JobState, JobStatus, Ledger
from shared.schema import JobPlan
from shared.storage import Storage


def describe(status: JobStatus) -> str:
    lines = [
        f"job       {status.job}",
        f"title     {status.title}",
        f"state     {status.state}",
        f"segments  {status.done}/{status.total} done ({status.reused} reused, "
        f"{max(status.done - status.reused, 0)} rendered, {len(status.failed)} failed)",
    ]
    if status.planning:
        chars = int(status.meta.get("chars", 0) or 0)
        lines[-1] = f"segments  not known yet: the control service is planning {chars:,} characters"
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
    note: Callable[[], str] | None = None,
) -> JobStatus:
    """Follow a job until it is done or failed, with a progress bar and ETA.

    ``alive`` is called on every poll (it raises when the farm cannot go on);
    ``note`` adds to the state on the progress line (restarts of local workers).
    """
    status = ledger.status(job)
    started = time.monotonic()
    bar = tqdm(
        total=status.total or None,
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
                bar.set_postfix_str(_progress_state(status, note), refresh=False)
                bar.refresh()
                return status
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                raise VoxfarmError(f"job {job} did not finish within {timeout_s:.0f}s (state {status.state})")
            if alive is not None:
                alive()
            time.sleep(poll_s)
            status = ledger.status(job)
            bar.total = status.total or None  # a job planned by the control plane learns its size late
            bar.n = status.done
            bar.set_postfix_str(_progress_state(status, note), refresh=False)
            bar.refresh()
    finally:
        bar.close()


def _progress_state(status: JobStatus, note: Callable[[], str] | None) -> str:
    extra = note() if note is not None else ""
    return f"{status.state}, {extra}" if extra else str(status.state)


def rerun_hint(storage: Storage, plan: JobPlan) -> str:
    """The last line of a failed render: what running the same command again will not redo."""
    try:
        groups = group_by_key(plan.segments)
        stored = sum(len(groups[key]) for key in plan_stored_keys(storage, plan, groups))
    except VoxfarmError:
        return "rerunning the same command reuses every segment already stored"
    rest = f" and renders only the other {plan.segments_total - stored}" if stored < plan.segments_total else ""
    return f"{stored} of {plan.segments_total} segments are stored; rerunning the same command reuses them{rest}"
