# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Speed and memory of the bundle networks against ANTs and Elastix, measured in one run.

Rows (each measured in a fresh subprocess, so that its peak memory is its own):

- ``inference``: per-pair latency at batch 1 and throughput at the largest batch that fits (batches 1, 2, 4, ...
  up to ``--max-batch``; on CUDA until out of memory, on CPU while the extrapolated peak stays under
  ``--memory-gib``) of ``build_vtn("ADDD")`` (the network of the ``vtn_addd`` and ``vtn_addd_inv`` bundles, at the
  paper's size) and ``build_miregnet()`` (``miregnet`` and ``midiceregnet``), run ``eager`` (float32, ``no_grad``)
  and through :class:`~monai_mine.inference.FastRegistration` (``fast``: channels-last float32; ``fast_amp``:
  with autocast, bfloat16 on CPU and float16 on CUDA; on CUDA also ``fast_graph``: a replayed CUDA graph);
- ``train``: one iteration of the bundle's own training step (its network, objective and optimiser from
  ``train.json``, run by :class:`~monai_mine.engines.RegistrationTrainer`) with AMP off and on, and with activation
  checkpointing where the row asks for it;
- ``classical``: ANTs SyN (antspyx defaults and the VTN paper's command) and Elastix affine + B-spline on one pair
  (the ICBM152 template pair of :mod:`monai_mine.apps.benchmark.pairs` when nilearn is installed, else a smooth
  synthetic pair).

Times are the median of ``--repeats`` runs after ``--warmup`` untimed runs (CUDA events on GPU). Peak memory is
``torch.cuda.max_memory_allocated`` on GPU and the worker process's peak resident set size on CPU (it includes
the Python, torch and MONAI runtime, about 0.5 GiB). The run prints one Markdown table and writes ``speed.json``
and ``speed.md`` (device, command line, date, load, the table and the targets of issue 6) to ``--out-dir``.

Modules: :mod:`~monai_mine.apps.benchmark.speed.rows` (what a run measures),
:mod:`~monai_mine.apps.benchmark.speed.measuring` (clocks, peak memory, timing loops),
:mod:`~monai_mine.apps.benchmark.speed.workers` (the subprocess that measures one row),
:mod:`~monai_mine.apps.benchmark.speed.reporting` (the Markdown report) and
:mod:`~monai_mine.apps.benchmark.speed.cli`.

Usage::

    python benchmarks/speed.py                                   # the full run (about 40 min on 2 CPU cores)
    monai-mine bench-speed --sizes 32 --repeats 1 --classical ants_defaults --out-dir /tmp/speed   # smoke test
"""

from __future__ import annotations

from monai_mine.apps.benchmark.speed.cli import main

__all__ = ["main"]
