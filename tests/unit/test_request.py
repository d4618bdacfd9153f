"""A submission's request: the job id it gives, and the same plan after a round trip through JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from producer.api.models import BookOptions
from producer.request import PlanRequest, Submission, check_request, submission_from_args
from shared.settings import load_settings
from tests.support.books import write_book


def _submission(book: Path, **options: object) -> Submission:
    settings = load_settings()
    args = argparse.Namespace(book=book, **{**BookOptions().planner_options(), **options})
    return submission_from_args(args, settings, None)


def test_the_job_id_follows_what_is_read_not_where_files_lie_or_how_the_book_is_packaged(tmp_path: Path) -> None:
    book = write_book(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "words.tsv").write_text("Anna\tAhna\n", encoding="utf-8")
    (tmp_path / "other.tsv").write_text("Anna\tAnnah\n", encoding="utf-8")

    plain = _submission(book).job
    lexicon_a = _submission(book, lexicon=tmp_path / "a" / "words.tsv").job
    lexicon_b = _submission(book, lexicon=tmp_path / "b" / "words.tsv").job

    assert lexicon_a == lexicon_b, "the same lexicon read from another folder"
    assert lexicon_a != plain
    assert _submission(book, lexicon=tmp_path / "other.tsv").job not in (plain, lexicon_a)
    assert _submission(book, engine="piper-onnx").job == plain, "the default engine named or not"
    assert _submission(book, chapter_format="mp3", book_format="none").job == plain, "assembly is not the job"
    assert _submission(book, length_scale=1.2).job != plain
    assert _submission(book, job="my-name").job == "my-name"


def test_a_request_read_back_from_json_plans_the_same_book(tmp_path: Path) -> None:
    submission = _submission(write_book(tmp_path), no_titles=True, noise_w=0.5)
    stored = PlanRequest.model_validate_json(submission.request.model_dump_json())

    again = check_request(stored, load_settings(), None)

    first, second = submission.plan(), again.plan()
    assert second.job == first.job
    assert [(s.index, s.key, s.text) for s in second.segments] == [(s.index, s.key, s.text) for s in first.segments]
    assert second.params.noise_w == 0.5 and not any(s.text == "The Storm" for s in second.segments)
