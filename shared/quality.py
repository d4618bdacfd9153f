"""The quality gate: checks one segment's audio before it is stored.

A neural voice occasionally produces a bad take: NaNs from a numerically
unlucky batch, a clipped burst, a clip that is far too short for its text
(words skipped) or far too long (babbling, a stuck decoder), or speech
buried in seconds of silence. The worker checks every segment with
``check_segment``; a failing take is synthesised again with other noise, and
after the last attempt the best take is kept and its findings travel with
the audio (a comment in the stored FLAC) into the manifest and the ledger,
so a listener's complaint can be traced to the segment that caused it.

The thresholds come from the default voice (en_US-joe-medium, 22050 Hz)
reading 180 sentences drawn from the three corpus books plus short
utterances ("No.", "A", "Chapter one."), with the default noise settings;
see docs/audiobook.md for the figures. Durations are measured on the speech
between the first and last non-silent frame, per token id (Piper interleaves
a pad id after every phoneme, so one phoneme is about two ids), and scaled by
the segment's ``length_scale``.

Pure functions over numpy arrays; no I/O except the FLAC encode/decode helpers.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import soundfile as sf

#: Marks the FLAC comment that carries a segment's findings.
COMMENT_PREFIX = "voxfarm-quality "

FRAME_S = 0.010
"""Silence is judged on 10 ms frames."""


@dataclass(frozen=True)
class QualityLimits:
    """Where a take stops being plausible. Defaults measured on real corpus sentences (module docstring)."""

    clip_level: float = 0.999
    """A sample at or above this magnitude is clipped (16-bit storage clips at 1.0)."""
    max_clipped_samples: int = 2
    """More clipped samples than this fails the take; the default voice peaked at -1.7 dBFS, never near 1.0."""
    silence_floor_dbfs: float = -60.0
    """A 10 ms frame quieter than this is silence, whatever the take's level."""
    silence_below_peak_db: float = 40.0
    """A frame this far below the take's loudest frame is silence too."""
    min_speech_dbfs: float = -45.0
    """A take whose loudest frame is quieter than this holds no speech (measured: -20 dBFS at the quietest)."""
    min_s_per_token: float = 0.008
    """Speech shorter than this per token id means words were skipped (measured: 16.9 ms at the fastest)."""
    max_s_per_token: float = 0.070
    """Speech longer than this per token id means the decoder ran on (measured: 33.8 ms at the slowest)."""
    max_leading_silence_s: float = 1.0
    """Measured: 0.37 s at most."""
    max_trailing_silence_s: float = 1.0
    """Measured: 0.35 s at most."""


DEFAULT_LIMITS = QualityLimits()


@dataclass(frozen=True)
class Finding:
    """One failed check: what it measured and the limit it crossed."""

    check: str
    """non_finite, empty, clipping, silent, too_fast, too_slow, leading_silence or trailing_silence."""
    value: float
    limit: float
    detail: str

    def severity(self) -> float:
        """How far past the limit, so the least bad of several failing takes can be kept."""
        if self.check in ("non_finite", "empty", "silent"):
            return 1e6
        if self.limit == 0:
            return abs(self.value)
        return abs(self.value - self.limit) / abs(self.limit)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(str(data["check"]), float(data["value"]), float(data["limit"]), str(data.get("detail", "")))


@dataclass(frozen=True)
class QualityReport:
    """The checks of one take (or, once stored, of the take that was kept and how many were tried)."""

    findings: tuple[Finding, ...] = ()
    attempts: int = 1
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.findings

    def score(self) -> tuple[int, float]:
        """Lower is better: fewer failed checks first, then how far past their limits."""
        return len(self.findings), sum(f.severity() for f in self.findings)

    def summary(self) -> str:
        return "; ".join(f.detail for f in self.findings) or "ok"

    def as_dict(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "findings": [f.as_dict() for f in self.findings]}


FLOAT32_POWER_LIMIT = 1e3
"""Past this a sample's square summed over a frame could overflow float32."""


def speech_bounds(samples: np.ndarray, sample_rate: int, limits: QualityLimits = DEFAULT_LIMITS) -> tuple[int, int]:
    """Sample offsets of the first and just past the last non-silent 10 ms frame; (0, 0) if all silent."""
    frame = max(1, round(sample_rate * FRAME_S))
    return _bounds(_frame_power(samples, frame), frame, len(samples), limits)


def _frame_power(samples: np.ndarray, frame: int, peak: float | None = None) -> np.ndarray:
    """Mean square of each whole ``frame``-sample frame: computed once per take, read by every level check.

    A float32 take whose largest magnitude (``peak``, when the caller knows it) is within
    FLOAT32_POWER_LIMIT is summed in float32 (one pass, no copy; its rounding is a millionth of a
    decibel); anything else in float64.
    """
    count = len(samples) // frame
    whole = samples[: count * frame]
    if peak is None and whole.dtype == np.float32 and len(whole):
        peak = float(np.max(np.abs(whole)))
    if whole.dtype == np.float32 and (peak or 0.0) <= FLOAT32_POWER_LIMIT:
        frames = whole.reshape(count, frame)
        return np.asarray(np.einsum("ij,ij->i", frames, frames), dtype=np.float64) / frame
    frames = np.asarray(whole, dtype=np.float64).reshape(count, frame)
    return np.asarray(np.mean(frames * frames, axis=1))


def _bounds(power: np.ndarray, frame: int, length: int, limits: QualityLimits) -> tuple[int, int]:
    count = len(power)
    if count == 0:
        return 0, 0
    level = 10.0 * np.log10(power + 1e-20)
    threshold = max(limits.silence_floor_dbfs, float(level.max()) - limits.silence_below_peak_db)
    voiced = np.flatnonzero(level > threshold)
    if len(voiced) == 0:
        return 0, 0
    end = (int(voiced[-1]) + 1) * frame
    return int(voiced[0]) * frame, length if voiced[-1] == count - 1 else end


def _peak_dbfs(samples: np.ndarray, power: np.ndarray) -> float:
    """The loudest 10 ms frame in dBFS (the whole take's mean square when it is shorter than one frame)."""
    if len(power) == 0:
        return float(10.0 * np.log10(np.mean(np.square(samples, dtype=np.float64)) + 1e-20))
    return float(10.0 * np.log10(np.max(power) + 1e-20))


def check_segment(
    samples: np.ndarray,
    sample_rate: int,
    *,
    tokens: int,
    length_scale: float = 1.0,
    limits: QualityLimits = DEFAULT_LIMITS,
) -> QualityReport:
    """Run every check on one take; an empty ``findings`` means the take may be stored as it is."""
    if samples.ndim != 1 or len(samples) == 0:
        return QualityReport((Finding("empty", float(samples.size), 1.0, "no audio samples"),))
    highest, lowest = float(np.max(samples)), float(np.min(samples))  # NaN, if any, wins both
    if not (math.isfinite(highest) and math.isfinite(lowest)):
        bad = int(samples.size - np.count_nonzero(np.isfinite(samples)))
        return QualityReport((Finding("non_finite", float(bad), 0.0, f"{bad} NaN or infinite samples"),))
    findings: list[Finding] = []
    measures: dict[str, float] = {}
    peak = max(highest, -lowest)
    clipped = int(np.count_nonzero(np.abs(samples) >= limits.clip_level)) if peak >= limits.clip_level else 0
    measures["clipped"] = float(clipped)
    if clipped > limits.max_clipped_samples:
        findings.append(
            Finding("clipping", float(clipped), float(limits.max_clipped_samples), f"{clipped} clipped samples")
        )
    frame = max(1, round(sample_rate * FRAME_S))
    power = _frame_power(samples, frame, peak)
    loudest = _peak_dbfs(samples, power)
    measures["loudest_frame_dbfs"] = round(loudest, 2)
    if loudest < limits.min_speech_dbfs:
        findings.append(
            Finding("silent", loudest, limits.min_speech_dbfs, f"no speech: loudest frame {loudest:.1f} dBFS")
        )
        return QualityReport(tuple(findings), measures=measures)
    start, end = _bounds(power, frame, len(samples), limits)
    lead, trail = start / sample_rate, (len(samples) - end) / sample_rate
    measures["leading_silence_s"], measures["trailing_silence_s"] = round(lead, 3), round(trail, 3)
    if lead > limits.max_leading_silence_s:
        findings.append(
            Finding("leading_silence", lead, limits.max_leading_silence_s, f"{lead:.2f}s of silence before speech")
        )
    if trail > limits.max_trailing_silence_s:
        findings.append(
            Finding("trailing_silence", trail, limits.max_trailing_silence_s, f"{trail:.2f}s of silence after speech")
        )
    if tokens > 0:
        scale = max(length_scale, 1e-3)
        per_token = (end - start) / sample_rate / tokens / scale
        measures["s_per_token"] = round(per_token, 5)
        if per_token < limits.min_s_per_token:
            findings.append(
                Finding(
                    "too_fast",
                    per_token,
                    limits.min_s_per_token,
                    f"{per_token * 1000:.1f} ms of speech per token, under {limits.min_s_per_token * 1000:.0f} ms",
                )
            )
        elif per_token > limits.max_s_per_token:
            findings.append(
                Finding(
                    "too_slow",
                    per_token,
                    limits.max_s_per_token,
                    f"{per_token * 1000:.1f} ms of speech per token, over {limits.max_s_per_token * 1000:.0f} ms",
                )
            )
    return QualityReport(tuple(findings), measures=measures)


def best_take(takes: Iterable[tuple[np.ndarray, QualityReport]]) -> tuple[np.ndarray, QualityReport]:
    """The take with the fewest and mildest findings; the earliest wins a tie."""
    ranked = list(takes)
    if not ranked:
        raise ValueError("no takes to choose from")
    return min(ranked, key=lambda take: take[1].score())


def storable(samples: np.ndarray) -> np.ndarray:
    """What may be written to 16-bit storage: finite, within [-1, 1], mono float32."""
    clean = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(clean, -1.0, 1.0)


def encode_checked_flac(samples: np.ndarray, sample_rate: int, report: QualityReport) -> bytes:
    """16-bit FLAC of a take kept despite findings, the findings written into its comment field."""
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", samplerate=sample_rate, channels=1, format="FLAC", subtype="PCM_16") as out:
        out.comment = COMMENT_PREFIX + json.dumps(report.as_dict(), separators=(",", ":"))
        out.write(storable(samples))
    return buffer.getvalue()


def report_from_comment(comment: str | None) -> QualityReport | None:
    """The findings a worker wrote into a stored segment, or None for a take that passed."""
    if not comment or not comment.startswith(COMMENT_PREFIX):
        return None
    try:
        data = json.loads(comment[len(COMMENT_PREFIX) :])
        findings = tuple(Finding.from_dict(item) for item in data.get("findings", []))
        return QualityReport(findings, attempts=int(data.get("attempts", 1)))
    except (ValueError, KeyError, TypeError, AttributeError):
        return QualityReport(
            (Finding("unreadable", 0.0, 0.0, "the stored quality findings could not be read"),), attempts=0
        )


def with_attempts(report: QualityReport, attempts: int) -> QualityReport:
    return replace(report, attempts=attempts)


def findings_dicts(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    return [f.as_dict() for f in findings]
