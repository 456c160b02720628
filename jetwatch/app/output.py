"""How one-shot commands print: config problems one per line, tables padded to their widest cell."""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 file``, ``3 files``, ``1 batch``, ``2 batches`` (``words`` when not word + "s")."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def print_problems(problems: Sequence[tuple[str, str]]) -> None:
    """``config error: <key>: <problem>`` on stderr, one line each."""
    for key, message in problems:
        print(f"config error: {key}: {message}", file=sys.stderr)


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[int] = (),
    indent: str = "",
) -> list[str]:
    """Rows under a header, columns padded to their widest cell; ``right`` columns right-aligned."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    lines = []
    for row in (header, *rows):
        cells = [
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(indent + "  ".join(cells).rstrip())
    return lines
