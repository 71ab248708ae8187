# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The README as the entry point: CI runs its install and test commands, its results table is the committed
benchmark run's, its links lead somewhere, and the documentation pages link to the results instead of restating the
headline numbers. (The site itself is built by the test command: ``mkdocs build --strict``.)"""

from __future__ import annotations

import json
import re

from tests.helpers import REPOSITORY

README = REPOSITORY / "README.md"
METHODS = {
    "identity": "identity",
    "vtn_addd": "vtn_addd",
    "vtn_addd_inv": "vtn_addd_inv",
    "miregnet": "miregnet",
    "midiceregnet": "midiceregnet",
    "ANTs SyN": "ants_syn",
    "Elastix": "elastix",
}
TRACKS = {"mono (T1 -> T1)": "mono", "multimodal (T2-like -> T1)": "multimodal"}


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _code(section: str) -> list[str]:
    return [line for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S) for line in block.splitlines()]


def test_ci_runs_the_readme_install_and_test_commands_verbatim():
    text = README.read_text()
    install = [line for line in _code(_section(text, "Install")) if line.startswith("pip install")]
    test = _code(_section(text, "Testing"))
    assert install == ['pip install -c constraints.txt -e ".[test,benchmark,export]"'] and len(test) == 1
    assert "mkdocs build --strict" in test[0] and "--durations=20" in test[0] and test[0].startswith("ruff check . && ")
    ci = (REPOSITORY / ".ci" / "run").read_text()
    assert f"{install[0]} && {test[0]}" in ci


def test_readme_results_are_the_committed_benchmark_run():
    text = README.read_text()
    summary = json.loads((REPOSITORY / "benchmarks" / "results" / "results.json").read_text())["summary"]
    rows = [line for line in _section(text, "Results").splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    methods = [METHODS[name] for name in header[1:]]
    checked = 0
    for row in rows[1:]:
        cells = [cell.strip().strip("*") for cell in row.strip("|").split("|")]
        if cells[0] in TRACKS:
            track, key, digits = TRACKS[cells[0]], "dice", 3
        elif cells[0].startswith("seconds per pair"):
            track, key, digits = "mono", "runtime_s", 1
        else:
            continue
        for method, cell in zip(methods, cells[1:]):
            if cell != "-":
                assert cell == f"{summary[track][method][key]['mean']:.{digits}f}", (cells[0], method)
                checked += 1
    assert checked == 20
    assert "benchmarks/results/results.md" in text


def test_readme_is_an_entry_point_whose_links_exist():
    text = README.read_text()
    assert len(text.splitlines()) <= 160
    for target in re.findall(r"\]\(((?!https?://)[^)#]+)\)", text):
        assert (REPOSITORY / target).exists(), target


def test_docs_pages_link_to_the_results_instead_of_restating_the_headline():
    summary = json.loads((REPOSITORY / "benchmarks" / "results" / "results.json").read_text())["summary"]
    headline = f"{summary['mono']['vtn_addd']['dice']['mean']:.3f}"
    assert headline in README.read_text()
    pages = sorted((REPOSITORY / "docs").glob("*.md"))
    assert pages
    restating = [page.name for page in pages if headline in page.read_text()]
    assert not restating, f"{restating} restate {headline}: link to results/results.md instead"
