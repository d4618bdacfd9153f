"""Subtitles: cues follow the segment timings, long sentences are cut at words, SRT and WebVTT are well formed."""

from __future__ import annotations

import itertools
import re

import pytest

from producer.audiobook.subtitles import Cue, TimedText, cues, split_text, to_srt, to_vtt

LONG = (
    "The Time Traveller, for so it will be convenient to speak of him, was expounding a recondite matter to us, "
    "and his grey eyes shone and twinkled."
)


def test_each_segment_is_one_cue_from_its_first_to_its_last_word() -> None:
    timed = [TimedText(0.05, 1.2, "The Storm"), TimedText(1.9, 3.4, "The wind rose in the evening.")]
    assert cues(timed) == [Cue(0.05, 1.2, "The Storm"), Cue(1.9, 3.4, "The wind rose in the evening.")]


def test_a_long_sentence_is_cut_at_words_into_cues_of_two_short_lines_sharing_its_time() -> None:
    out = cues([TimedText(10.0, 20.0, LONG)])
    assert len(out) > 1
    assert out[0].start_s == 10.0 and out[-1].end_s == 20.0
    for earlier, later in itertools.pairwise(out):
        assert earlier.end_s == pytest.approx(later.start_s)
    for cue in out:
        lines = cue.text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines)
    assert " ".join(cue.text.replace("\n", " ") for cue in out) == LONG
    # Time is shared by length: the longer cue stays up longer.
    durations = [c.end_s - c.start_s for c in out]
    lengths = [len(c.text) for c in out]
    assert durations[lengths.index(max(lengths))] == max(durations)


def test_a_very_short_cue_stays_up_half_a_second_but_never_overlaps_the_next() -> None:
    out = cues([TimedText(1.0, 1.1, "No."), TimedText(1.3, 2.0, "Yes.")])
    assert out[0].end_s == pytest.approx(1.3)
    alone = cues([TimedText(1.0, 1.1, "No.")])
    assert alone[0].end_s == pytest.approx(1.5)


def test_split_text_keeps_every_word_and_wraps_in_balanced_lines() -> None:
    pieces = split_text("one two three four five six seven eight nine ten eleven twelve thirteen")
    assert pieces == ["one two three four five six seven\neight nine ten eleven twelve thirteen"]
    longer = split_text("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen")
    assert longer == ["one two three four five six seven eight\nnine ten eleven twelve thirteen fourteen", "fifteen"]
    assert split_text("   ") == []


def test_srt_numbers_cues_and_uses_comma_milliseconds() -> None:
    text = to_srt([Cue(0.05, 1.2, "The Storm"), Cue(3661.5, 3662.25, "Two\nlines")])
    assert text == ("1\n00:00:00,050 --> 00:00:01,200\nThe Storm\n\n2\n01:01:01,500 --> 01:01:02,250\nTwo\nlines\n")


def test_vtt_has_its_header_dot_milliseconds_and_escaped_markup() -> None:
    text = to_vtt([Cue(0.0, 1.0, "Fish & <chips> --> now")])
    assert text.startswith("WEBVTT\n\n")
    assert "00:00:00.000 --> 00:00:01.000\nFish &amp; &lt;chips&gt; -&gt; now\n" in text


def test_cue_text_never_holds_a_blank_line_or_an_arrow() -> None:
    text = to_srt(cues([TimedText(0.0, 2.0, "a --> b\n\n\nc")]))
    body = text.split("\n", 2)[2]
    assert "-->" not in body and "\n\n" not in body.strip("\n")
    assert re.match(r"1\n00:00:00,000 --> 00:00:02,000\n", text)


def test_subtitles_can_name_the_speaker_of_an_attributed_quotation() -> None:
    timed = [TimedText(0.0, 1.0, '"Come in!"', "Holmes"), TimedText(1.2, 2.0, "said Holmes.")]

    assert [c.text for c in cues(timed, speakers=True)] == ['HOLMES: "Come in!"', "said Holmes."]
    assert [c.text for c in cues(timed)] == ['"Come in!"', "said Holmes."], "only when asked"
