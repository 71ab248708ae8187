# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Markdown tables of the benchmark reports (GitHub-flavoured: a header line, a separator line, one line per row)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["markdown_table"]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """The lines ``| a | b |`` of ``header`` and each row, without a trailing newline.

    Args:
        header: the column titles.
        rows: the cells of each row, as many as ``header`` has.
        align: one letter per column, ``"l"`` (left) or ``"r"`` (right, for numbers); default all left.

    Raises:
        ValueError: when a row or ``align`` does not have one entry per column.
    """
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align must have one letter 'l' or 'r' per column ({len(header)}), got {align!r}.")
    lines = [_line(header), "|" + "|".join("---:" if side == "r" else "---" for side in align) + "|"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"each row must have {len(header)} cells (one per column), got {list(row)}.")
        lines.append(_line(row))
    return "\n".join(lines)


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
