# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""The speed benchmark's report: the table of measured rows, issue 6's targets, and ``speed.md`` around them.

``speed.json`` files written before the benchmark stopped measuring the ``ablation`` rows (each inference change
against the flow code from before the speed work) still hold them; :func:`report` shows them in a section marked
as coming from that earlier run.
"""

from __future__ import annotations

import platform

import torch

from monai_mine.apps.benchmark.markdown import markdown_table
from monai_mine.apps.benchmark.speed.measuring import GIB, device_name
from monai_mine.apps.benchmark.speed.rows import CLASSICAL, NETWORKS

__all__ = ["KEPT_HEADING", "earlier_ablation_tables", "kept_sections", "report", "row_label", "speed_table", "targets"]

SPEED_COLUMNS = (
    "what",
    "device",
    "size",
    "batch-1 latency s",
    "throughput pairs/s (batch)",
    "train iteration s (pairs/s)",
    "peak memory GiB",
)


def _gib(value: float | None) -> str:
    return "" if value is None else f"{value / GIB:.2f}"


def row_label(row: dict) -> str:
    """What a row measured, in words (the first column of the table)."""
    width = "" if row.get("width", 16) == 16 else f", width {row['width']}"
    if row["kind"] == "inference":
        return f"{NETWORKS[row['network']]} inference, {row['mode']}{width}"
    if row["kind"] == "ablation":
        return f"{NETWORKS[row['network']]}{width}"
    if row["kind"] == "train":
        switches = (
            ("AMP", row["amp"]),
            ("checkpointing", row["checkpointing"]),
            ("channels-last", row.get("channels_last")),
        )
        extras = [name for name, on in switches if on]
        return f"{row['bundle']} training step{width}" + (f" ({', '.join(extras)})" if extras else "")
    if row["kind"] == "register":
        no_figure = ", --qc false" if row.get("qc") is False else ""
        return f"monai-mine register, {row['bundle']}, instance optimisation {row['instance_optimization']}{no_figure}"
    return CLASSICAL[row["method"]]


def speed_table(rows: list[dict]) -> str:
    """The main table: one line per inference, training or classical row (an earlier run's ablation rows apart)."""
    lines = []
    for row in rows:
        if row["kind"] == "ablation":
            continue
        cells = [row_label(row), row["device"], f"{row['size']}^3", "", "", "", ""]
        if "error" in row:
            cells[3] = row["error"][:100]
        elif row["kind"] == "inference":
            cells[3] = f"{row['latency_s']:.3f}"
            cells[4] = f"{row['pairs_per_s']:.2f} ({row['throughput_batch']})"
            cells[6] = _gib(row["peak_memory_bytes"])
        elif row["kind"] == "train":
            cells[5] = f"{row['iteration_s']:.2f} ({row['pairs_per_s']:.2f})"
            cells[6] = _gib(row["peak_memory_bytes"])
        elif row["kind"] == "register":
            cells[3] = f"{row['latency_s']:.2f}"
            cells[6] = _gib(row["peak_memory_bytes"])
        else:
            cells[3] = f"{row['latency_s']:.1f}"
            cells[6] = _gib(row["peak_memory_bytes"])
        lines.append(cells)
    return markdown_table(SPEED_COLUMNS, lines, align="llrrrrr")


def register_tables(rows: list[dict]) -> str:
    """``monai-mine register`` from process start to exit, stage by stage, beside ``import torch, monai`` and a
    second call on a loaded bundle (``""`` when no such row ran)."""
    parts = []
    for row in rows:
        if row["kind"] != "register" or "error" in row:
            continue
        stages = list(dict.fromkeys([*row["stages"], *row["second_call_stages"]]))
        lines = [
            [name, f"{row['stages'].get(name, 0.0):.3f}", f"{row['second_call_stages'].get(name, 0.0):.3f}"]
            for name in stages
        ]
        lines.append(["total", f"{row['latency_s']:.3f}", f"{row['second_call_s']:.3f}"])
        many = ""
        if "many_pairs_s" in row:
            many = (
                f" One process over a folder of {row['many_pairs']} such pairs took {row['many_pairs_s']:.1f} s, "
                f"{row['many_pairs_s'] / row['many_pairs']:.2f} s per pair (target, network alone: <= 1.5 s)."
            )
        parts.append(
            f'{row_label(row)} ({row["pair"]}): `python -c "import torch, monai"` took '
            f"{row['import_torch_monai_s']:.2f} s; target (issue 28, network alone): <= that + 1.5 s.{many}\n\n"
            + markdown_table(("stage", "process start to exit (s)", "second call, bundle loaded (s)"), lines, "lrr")
        )
    if not parts:
        return ""
    return "\n## monai-mine register: wall time by stage\n\n" + "\n\n".join(parts) + "\n"


def earlier_ablation_tables(rows: list[dict]) -> str:
    """The ``ablation`` rows of an earlier run (one table per network), or ``""`` when there are none."""
    parts = []
    for row in rows:
        if row["kind"] != "ablation":
            continue
        if "error" in row:
            parts.append(f"{NETWORKS[row['network']]}, {row['size']}^3: failed: {row['error']}")
            continue
        before = next(iter(row["variants"].values()))["median_s"]
        changes = [
            [
                name,
                f"{values['median_s']:.3f}",
                f"{before / values['median_s']:.2f}x",
                f"{values['max_abs_ddf_diff']:.2e}",
            ]
            for name, values in row["variants"].items()
        ]
        header = ("change", "time s", "speed-up vs before", "max abs DDF difference from before (voxels)")
        parts.append(
            f"{row_label(row)}, batch 1, {row['size']}^3, CPU, median of {row['repeats']} interleaved "
            f"rounds (largest |DDF| {row['reference_max_abs_ddf']:.2f} voxels):\n\n"
            + markdown_table(header, changes, align="lrrr")
        )
    return "\n\n".join(parts)


def _find(rows: list[dict], **match) -> dict | None:
    for row in rows:
        if "error" not in row and all(row.get(key) == value for key, value in match.items()):
            return row
    return None


def targets(rows: list[dict]) -> str:
    """Issue 6's targets, each met or not, from the measured rows."""
    lines = []
    for mode in ("eager", "fast"):
        vtn = _find(rows, kind="inference", device="cpu", network="vtn_addd", size=128, mode=mode, width=16)
        if vtn is None:
            continue
        for method, factor in (("ants_vtn_paper", 100), ("elastix", 10)):
            classical = _find(rows, kind="classical", method=method, size=128)
            if classical is None:
                lines.append(f"- CPU, VTN-ADDD 128^3 ({mode}) vs {CLASSICAL[method]}: not measured in this run.")
                continue
            ratio = classical["latency_s"] / vtn["latency_s"]
            verdict = "met" if ratio >= factor else "NOT met"
            lines.append(
                f"- CPU, VTN-ADDD 128^3 inference ({mode}, {vtn['latency_s']:.2f} s) >= {factor}x faster than "
                f"{CLASSICAL[method]} ({classical['latency_s']:.1f} s): {ratio:.0f}x, **{verdict}**."
            )
    gpu = [row for row in rows if row["device"] == "cuda" and "error" not in row and row.get("width") == 16]
    if not gpu:
        lines.append(
            "- GPU targets (VTN-ADDD 128^3 < 10 ms per pair at batch 1, MIRegNet 320^3 < 1 s, VTN-ADDD training "
            "pairs/s with AMP on and off): **not measured**, no GPU in this run."
        )
    else:
        vtn = [r for r in gpu if r["kind"] == "inference" and r["network"] == "vtn_addd" and r["size"] == 128]
        mir = [r for r in gpu if r["kind"] == "inference" and r["network"] == "miregnet" and r["size"] == 320]
        for rows_, limit, name in ((vtn, 0.010, "VTN-ADDD 128^3"), (mir, 1.0, "MIRegNet 320^3")):
            if rows_:
                best = min(rows_, key=lambda r: r["latency_s"])
                verdict = "met" if best["latency_s"] < limit else "NOT met"
                lines.append(
                    f"- GPU, {name} inference < {limit * 1000:g} ms: {best['latency_s'] * 1000:.1f} ms "
                    f"({best['mode']}), **{verdict}**."
                )
        for amp in (False, True):
            train = _find(rows, kind="train", device="cuda", bundle="vtn_addd", size=128, amp=amp, checkpointing=False)
            if train:
                lines.append(
                    f"- GPU, VTN-ADDD 128^3 training, AMP {'on' if amp else 'off'}: {train['pairs_per_s']:.1f} pairs/s."
                )
    return "\n".join(lines)


def _earlier_ablation_section(rows: list[dict]) -> str:
    tables = earlier_ablation_tables(rows)
    if not tables:
        return ""
    return f"""
## Effect of each inference change (CPU), from an earlier run

These rows come from an earlier run and are kept as `speed.json` holds them: that run timed each change against
the flow code from before the speed work, which this benchmark no longer measures.

{tables}
"""


KEPT_HEADING = "## Peak memory of `monai-mine register`"
"""A section of ``speed.md`` measured by hand (not by this benchmark), kept when the benchmark rewrites the file."""


def kept_sections(previous: str) -> str:
    """The hand-measured part of an earlier ``speed.md`` (from :data:`KEPT_HEADING` on), or ``""``."""
    start = previous.find(KEPT_HEADING)
    return "" if start < 0 else "\n" + previous[start:]


def report(
    rows: list[dict],
    command: str,
    started: str,
    load_before: str,
    load_after: str,
    seconds: float,
    update: str = "",
    kept: str = "",
) -> str:
    """The text of ``speed.md``: the run's command, date, devices, software and load, the table, the targets and
    ``kept``, the hand-measured sections of the earlier file (:func:`kept_sections`)."""
    devices = sorted({row["device"] for row in rows})
    names = "; ".join(f"{device}: {device_name(torch.device(device))}" for device in devices)
    threads = sorted({row.get("torch_threads") for row in rows if row.get("torch_threads")})
    itk = sorted({row.get("threads") for row in rows if row["kind"] == "classical" and "threads" in row})
    return f"""# Speed and memory

- Command: `{command}`
- Date: {started} (run took {seconds / 60:.1f} min){update}
- Device: {names}
- Software: torch {torch.__version__}, torch threads {threads}, ITK threads (ANTs, Elastix) {itk}, Python
  {platform.python_version()}
- Load average (1, 5, 15 min) before the run: {load_before}; after: {load_after}. The machine's cores are shared,
  so a load above the core count inflates the times of every row alike.

Times are medians after warm-up (classical methods: one run each, no warm-up). Peak memory on CPU is the peak
resident set size of the measuring process (it includes about 0.5 GiB of Python, torch and MONAI runtime); on GPU
`torch.cuda.max_memory_allocated`. Inference modes: `eager` = float32 `network(image)` under `no_grad`; `fast` =
`monai_mine.inference.FastRegistration` (inference_mode, channels_last_3d, float32); `fast_amp` = the same under
autocast (bfloat16 on CPU, float16 on CUDA); `fast_graph` = float32 replayed as a CUDA graph. Training rows run the
bundle's own network, objective and optimiser (train.json with the papers' network widths) through
`RegistrationTrainer` at batch 1 (vtn_addd_inv runs forward and reverse pairs: 2 pairs per iteration).

{speed_table(rows)}

## Targets (issue 6)

{targets(rows)}
{register_tables(rows)}{_earlier_ablation_section(rows)}{kept}"""
