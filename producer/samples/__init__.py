"""The sample book that the README's first command renders (rebuilt by ``make_sample.py``)."""

from pathlib import Path

SAMPLE_BOOK = Path(__file__).resolve().parent / "the-time-machine-sample.epub"
