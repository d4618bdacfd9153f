"""Plain text, Markdown, HTML and JSONL ingestion: chapters from headings, metadata, what is not read."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.ingest import load_book, load_utterances
from producer.ingest.text import is_heading
from shared.errors import BadInputError, EmptyInputError

OPENING = (
    "The Time Traveller (for so it will be convenient to speak of him) was expounding a recondite matter to us. "
    "His grey eyes shone and twinkled, and his usually pale face was flushed and animated."
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "line",
    ["CHAPTER IV", "Chapter 4", "Chapter the Fourth", "CHAPTER IV.", "Chapter Twenty-One", "Chapter 1: The Beginning",
     "BOOK II", "Letter 3", "XII.", "IX", "PROLOGUE", "第十二章", "第三回", "第2节 开始"],
)  # fmt: skip
def test_heading_shapes_are_recognised(line: str) -> None:
    assert is_heading(line)


@pytest.mark.parametrize(
    "line",
    [
        "Chapter and verse were quoted.",
        "Part of the reason was money.",
        "I went home.",
        "Book one of the series was long.",
        "IIII",
        OPENING,
    ],
)
def test_prose_is_not_a_heading(line: str) -> None:
    assert not is_heading(line)


def test_gutenberg_text_with_header_title_page_contents_and_licence(tmp_path: Path) -> None:
    wrapped = OPENING.replace("was expounding", "was\nexpounding").replace("and his", "and\nhis")
    text = (
        "The Project Gutenberg eBook of The Time Machine\n\nTitle: The Time Machine\n\nAuthor: H. G. Wells\n\n"
        "Language: English\n\n*** START OF THE PROJECT GUTENBERG EBOOK THE TIME MACHINE ***\n\n"
        "The Time Machine\n\nAn Invention\n\nby H. G. Wells\n\nCONTENTS\n\nCHAPTER I.\nCHAPTER II.\n\n"
        f"CHAPTER I.\nINTRODUCTION\n\n{wrapped}\n\n“You must follow me carefully.”\n\n"
        "CHAPTER II.\nTHE MACHINE\n\n“I think that at that time none of us quite believed in the Time Machine.”\n\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK THE TIME MACHINE ***\n\nSection 1. General Terms of Use.\n"
    )
    book = load_book(write(tmp_path, "pg35.txt", text))
    assert (book.title, book.author, book.language, book.source_format) == (
        "The Time Machine",
        "H. G. Wells",
        "en",
        "txt",
    )
    assert [c.title for c in book.chapters] == ["CHAPTER I: INTRODUCTION", "CHAPTER II: THE MACHINE"]
    assert book.chapters[0].paragraphs == [OPENING, "“You must follow me carefully.”"]
    everything = " ".join(p for c in book.chapters for p in c.paragraphs)
    assert "Gutenberg" not in everything and "CONTENTS" not in everything and "General Terms" not in everything


def test_include_matter_keeps_a_plain_text_title_page(tmp_path: Path) -> None:
    path = write(tmp_path, "book.txt", "The Book\n\nby Someone\n\nChapter 1\n\nText one.\n\nChapter 2\n\nText two.\n")
    assert [c.title for c in load_book(path).chapters] == ["Chapter 1", "Chapter 2"]
    assert [c.title for c in load_book(path, include_matter=True).chapters] == ["book", "Chapter 1", "Chapter 2"]


def test_bare_roman_numerals_and_named_headings(tmp_path: Path) -> None:
    path = write(tmp_path, "wells.txt", f"I.\n\n{OPENING}\n\nII.\n\nMore text here.\n\nEPILOGUE\n\nThe end came.\n")
    book = load_book(path)
    assert [(c.title, c.paragraphs) for c in book.chapters] == [
        ("I.", [OPENING]),
        ("II.", ["More text here."]),
        ("EPILOGUE", ["The end came."]),
    ]


def test_text_without_headings_is_one_chapter_titled_by_the_file_name(tmp_path: Path) -> None:
    book = load_book(write(tmp_path, "a-short-note.txt", f"{OPENING}\n\nA second paragraph.\n"))
    assert book.title == "a-short-note"
    assert [(c.title, len(c.paragraphs)) for c in book.chapters] == [("a-short-note", 2)]


def test_chinese_text_with_chapter_headings_and_indented_paragraphs(tmp_path: Path) -> None:
    text = (
        "第一章 开始\n\n　　他说：“我们走吧。”今天是2024年5月1日。\n　　第二段落在这里。\n\n第三回 结束\n\n　　完了。\n"
    )
    book = load_book(write(tmp_path, "故事.txt", text))
    assert book.language == "zh"
    assert [(c.title, c.paragraphs) for c in book.chapters] == [
        ("第一章 开始", ["他说：“我们走吧。”今天是2024年5月1日。", "第二段落在这里。"]),
        ("第三回 结束", ["完了。"]),
    ]


MARKDOWN = """---
title: "The Time Machine: Two Chapters"
author: H. G. Wells
language: en-GB
tags: [ignored, list]
---

# The Time Machine

Some *preface* text, with a [link](http://example.invalid) and a note.[^1]

## I

The Time Traveller was expounding a
recondite matter to us. **His grey eyes** shone.

```python
print("code is not read")
```

### A sub-heading

- First item
- Second item

> A quoted line
> continues here.

![an image](cover.png)

## II

I think that at that time none of us quite believed in the Time Machine.

[^1]: The note text is not read.
    Nor its continuation.
"""


def test_markdown_front_matter_title_heading_and_chapters(tmp_path: Path) -> None:
    book = load_book(write(tmp_path, "tm.md", MARKDOWN))
    assert (book.title, book.author, book.language, book.source_format) == (
        "The Time Machine: Two Chapters",
        "H. G. Wells",
        "en-GB",
        "md",
    )
    assert [(c.title, c.paragraphs) for c in book.chapters] == [
        ("The Time Machine", ["Some preface text, with a link and a note."]),
        (
            "I",
            [
                "The Time Traveller was expounding a recondite matter to us. His grey eyes shone.",
                "A sub-heading",
                "First item",
                "Second item",
                "A quoted line continues here.",
            ],
        ),
        ("II", ["I think that at that time none of us quite believed in the Time Machine."]),
    ]


def test_markdown_parts_prefix_their_chapters(tmp_path: Path) -> None:
    text = "# Part One\n\n## Chapter 1\n\nAlpha.\n\n## Chapter 2\n\nBeta.\n\n# Part Two\n\n## Chapter 3\n\nGamma.\n"
    book = load_book(write(tmp_path, "parts.md", text))
    assert [c.title for c in book.chapters] == ["Part One: Chapter 1", "Part One: Chapter 2", "Part Two: Chapter 3"]


def test_markdown_setext_headings(tmp_path: Path) -> None:
    book = load_book(write(tmp_path, "setext.md", "One\n===\n\nFirst.\n\nTwo\n===\n\nSecond.\n"))
    assert [(c.title, c.paragraphs) for c in book.chapters] == [("One", ["First."]), ("Two", ["Second."])]


def test_html_headings_metadata_and_hidden_content(tmp_path: Path) -> None:
    page = (
        '<!DOCTYPE html><html lang="en-US"><head><title>An HTML Book</title><meta name="author" content="A. Writer">'
        "<style>p{}</style><script>var hidden = 1;</script></head><body><h1>An HTML Book</h1>"
        '<h2>First</h2><p>Hello &amp; welcome<sup><a href="#n1">1</a></sup>.</p>'
        "<h2>Second</h2><p>Bye&nbsp;now.</p><div hidden>invisible</div></body></html>"
    )
    book = load_book(write(tmp_path, "page.html", page))
    assert (book.title, book.author, book.language, book.source_format) == (
        "An HTML Book",
        "A. Writer",
        "en-US",
        "html",
    )
    assert [(c.title, c.paragraphs) for c in book.chapters] == [
        ("First", ["Hello & welcome."]),
        ("Second", ["Bye now."]),
    ]


def test_jsonl_utterances_with_optional_voice(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "batch.jsonl",
        '{"id": "intro-1", "text": "Welcome to  the show."}\n\n'
        '{"id": "outro_2", "text": "Goodbye.", "voice": "en_US-joe-medium"}\n',
    )
    utterances = load_utterances(path)
    assert [(u.id, u.text, u.voice) for u in utterances] == [
        ("intro-1", "Welcome to the show.", None),
        ("outro_2", "Goodbye.", "en_US-joe-medium"),
    ]
    book = load_book(path)
    assert [(c.title, c.paragraphs) for c in book.chapters] == [
        ("intro-1", ["Welcome to the show."]),
        ("outro_2", ["Goodbye."]),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "../etc", "text": "x"}', "line 2: id '../etc' is not a safe name"),
        ('{"id": "b", "text": ""}', "line 2: text must be a string"),
        ('{"id": "b", "text": "ok", "voice": "a/b"}', "line 2: invalid voice id"),
        ('{"id": "a", "text": "again"}', "line 2: id 'a' repeats line 1"),
        ('{"id": "b", "txt": "typo"}', r"line 2: unknown field\(s\) \['txt'\]"),
        ('["not", "an", "object"]', "line 2: expected an object"),
    ],
)
def test_bad_jsonl_lines_are_rejected_with_their_line_number(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, "bad.jsonl", '{"id": "a", "text": "Fine."}\n' + line + "\n")
    with pytest.raises(BadInputError, match=message):
        load_utterances(path)


def test_empty_jsonl_is_empty_input(tmp_path: Path) -> None:
    with pytest.raises(EmptyInputError):
        load_utterances(write(tmp_path, "empty.jsonl", "\n\n"))
