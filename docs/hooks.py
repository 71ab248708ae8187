# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""MkDocs hooks (mkdocs.yml ``hooks:``): pages made at build time, so that nothing in the site is a hand copy.

- ``api/<module>.md``: one page per public module of ``monai_mine``, rendered by mkdocstrings from the docstrings.
  The modules are found in the source tree at build time (a package whose ``__init__.py`` declares ``__all__``; a
  module file declaring ``__all__`` directly in a package that does not), so moving a module moves its page.
- ``results/<name>.md``, ``.png`` and ``.json``: the tables, figures and records that the benchmark scripts write
  into ``benchmarks/results/``, copied unchanged. Numbers in the site come from these pages.
- ``model_cards/<bundle>.md``: each bundle's ``docs/README.md``, its relative links (to files of the bundle folder,
  which the site does not hold) turned into code spans.

The three sections are appended to the ``nav`` of mkdocs.yml.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "monai_mine"
RESULTS = ROOT / "benchmarks" / "results"
BUNDLES = ROOT / "bundles"
RESULT_PAGES = {
    "results": "Brain benchmark: shipped weights against ANTs and Elastix",
    "instance_optimization": "Instance optimisation against time",
    "speed": "Speed and memory",
    "export_formats": "Export formats",
    "learning_curves": "Learning curves (demo data)",
    "training_scaling": "Training: network width and length",
    "training_profile": "Training: where an iteration's time goes",
    "held_out_contrasts": "MI models on held-out contrasts",
    "miregnet_similarities": "MIRegNet: MINE against other similarities",
    "miregnet_diagnostics": "MIRegNet: what makes MINE train",
}
"""The generated result tables, in the order of the nav (a table not listed here is appended by its file name)."""

_ALL = re.compile(r"^__all__\s*[:=]", re.MULTILINE)
_RELATIVE_LINK = re.compile(r"\[([^\]]+)\]\((?![a-z]+://|#)([^)]+)\)")


def _declares_all(path: Path) -> bool:
    return path.is_file() and bool(_ALL.search(path.read_text(encoding="utf-8")))


def public_modules(root: Path = ROOT, package: str = PACKAGE) -> list[str]:
    """Dotted names of the modules that get an API page, sorted."""
    names = []
    top = root / package
    for init in sorted(top.rglob("__init__.py")):
        folder = init.parent
        parts = folder.relative_to(root).parts
        if any(part.startswith("_") for part in parts):
            continue
        documented = folder != top and _declares_all(init)
        if documented:
            names.append(".".join(parts))
        if folder == top or not documented:  # its modules have no package page that re-exports them
            for module in sorted(folder.glob("*.py")):
                if not module.name.startswith("_") and _declares_all(module):
                    names.append(".".join((*parts, module.stem)))
    return sorted(names)


def _result_names() -> list[str]:
    present = {path.stem for path in RESULTS.glob("*.md") if path.name != "README.md"}
    return [name for name in RESULT_PAGES if name in present] + sorted(present - set(RESULT_PAGES))


def _bundle_names() -> list[str]:
    return sorted(path.parent.parent.name for path in BUNDLES.glob("*/docs/README.md"))


def _model_card(name: str) -> str:
    text = (BUNDLES / name / "docs" / "README.md").read_text(encoding="utf-8")
    text = _RELATIVE_LINK.sub(lambda match: f"`{match.group(1)}`", text)
    return text + f"\n\n---\n\n*Copied from `bundles/{name}/docs/README.md` when the site was built.*\n"


def on_config(config, **kwargs):
    nav = config.nav if config.nav is not None else []
    nav.append({"Model cards": [{name: f"model_cards/{name}.md"} for name in _bundle_names()]})
    api = [{"Overview": "api/index.md"}] + [{name: f"api/{name}.md"} for name in public_modules()]
    results = [{RESULT_PAGES.get(name, name): f"results/{name}.md"} for name in _result_names()]
    nav.append({"Results (generated)": results})
    nav.append({"API reference": api})
    config.nav = nav
    return config


def _api_index(modules: list[str]) -> str:
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings of the source tree at build time, one page per public module (its",
        '`__all__`). Bundle configs name these objects in `_target_` after `"imports": ["$import monai_mine"]`.',
        "The conventions they share (tensor layouts, DDF units and direction) are in [Design notes](../design.md).",
        "",
    ]
    lines += [f"- [`{name}`]({name}.md)" for name in modules]
    return "\n".join(lines) + "\n"


def on_files(files, config, **kwargs):
    modules = public_modules()
    files.append(File.generated(config, "api/index.md", content=_api_index(modules)))
    for name in modules:
        content = f"# `{name}`\n\n::: {name}\n"
        files.append(File.generated(config, f"api/{name}.md", content=content))
    for name in _result_names():
        text = (RESULTS / f"{name}.md").read_text(encoding="utf-8")
        note = f"\n\n---\n\n*Copied unchanged from `benchmarks/results/{name}.md`, as its script wrote it.*\n"
        files.append(File.generated(config, f"results/{name}.md", content=text + note))
    for name in _bundle_names():
        files.append(File.generated(config, f"model_cards/{name}.md", content=_model_card(name)))
    for record in sorted([*RESULTS.glob("*.png"), *RESULTS.glob("*.json")]):  # what the tables link to
        files.append(File.generated(config, f"results/{record.name}", abs_src_path=str(record)))
    return files
