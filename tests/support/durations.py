"""What a chapter's length must be: its segments as stored, each at the chapter's rate, and the pauses between.

Assembly brings segments of other rates to the job's (a 16 kHz Piper voice, 24 kHz Qwen3-TTS) with a
polyphase resampler whose output has ceil(n * rate / own rate) samples; a chapter whose length differs
from this sum lost or stretched audio on the way.
"""

from __future__ import annotations

from shared.audio import decode_audio
from shared.keys import segment_path
from shared.schema import AssemblyOptions, JobPlan
from shared.storage import Storage


def expected_chapter_s(plan: JobPlan, storage: Storage, chapter: int = 0) -> float:
    pauses = plan.assembly or AssemblyOptions()
    segments = plan.chapters[chapter].segments
    total = pauses.chapter_lead_ms / 1000
    for position, segment in enumerate(segments):
        samples, rate = decode_audio(storage.get_bytes(segment_path(plan.weights_of(segment), segment.key)))
        total += -(-len(samples) * plan.sample_rate // rate) / plan.sample_rate
        if position == len(segments) - 1:
            total += pauses.chapter_pause_ms / 1000
        elif not segment.continues:
            total += (pauses.paragraph_pause_ms if segment.paragraph_end else pauses.sentence_pause_ms) / 1000
    return total
