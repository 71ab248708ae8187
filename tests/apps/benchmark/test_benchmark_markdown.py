"""Markdown tables of the benchmark reports: header, alignment row, one line per row; bad shapes refused."""

from __future__ import annotations

import pytest

from monai_mine.apps.benchmark.markdown import markdown_table


def test_table_lines_and_alignment():
    table = markdown_table(["what", "time s"], [["a", "1.0"], ["b", ""]], align="lr")
    assert table.splitlines() == ["| what | time s |", "|---|---:|", "| a | 1.0 |", "| b |  |"]
    assert markdown_table(["x"], []) == "| x |\n|---|"


def test_rows_and_alignment_must_match_the_columns():
    with pytest.raises(ValueError, match="each row must have 2 cells"):
        markdown_table(["a", "b"], [["1"]])
    with pytest.raises(ValueError, match="align must have one letter 'l' or 'r' per column"):
        markdown_table(["a", "b"], [], align="lc")
