# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""Command line: ``monai-mine COMMAND`` or ``python -m monai_mine COMMAND`` (``--help`` lists the commands)."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import fire

from monai_mine.keys import FIXED_IMAGE, FIXED_LABEL

__all__ = [
    "bench_speed",
    "benchmark",
    "demo",
    "jacobian",
    "learn2reg_datalist",
    "learn2reg_evaluate",
    "learn2reg_export",
    "register",
    "template",
    "version",
    "warp",
    "main",
]


def demo(out_dir: str = "monai_mine_demo", size: int = 32, steps: int = 100, seed: int = 0) -> str:
    """Register a synthetic pair with an untrained VTN cascade optimised on it, and write the result as NIfTI.

    Args:
        out_dir: folder for fixed, moving, warped, ddf and label files (created; existing files of the same name
            are replaced, nothing else is touched).
        size: edge of the synthetic volume in voxels (a multiple of 8).
        steps: optimisation steps.
        seed: seed of the pair and the network.

    Returns:
        a one-line summary (Dice before/after, folding, time).
    """
    from monai_mine.apps.demo import register_synthetic_pair
    from monai_mine.io import save_nifti

    result, tensors = register_synthetic_pair(size=size, steps=steps, seed=seed)
    folder = Path(out_dir)
    for name, tensor in tensors.items():
        save_nifti(tensor, folder / f"{name}.nii.gz")
    return (
        f"mean Dice {result.dice_before:.3f} -> {result.dice_after:.3f}, folding {result.folding_percent:.3f} %, "
        f"{result.steps} steps in {result.seconds:.1f} s; NIfTI files in {folder.resolve()}"
    )


def version() -> str:
    """The installed monai-mine version."""
    from monai_mine import __version__

    return __version__


def learn2reg_datalist(dataset: str, out: str = "", training: str = "auto") -> str:
    """Read a Learn2Reg task's *_dataset.json into a monai-mine datalist (training, validation, test).

    Args:
        dataset: the task's *_dataset.json, or its folder.
        out: write the datalist there as JSON (absolute paths); only print the summary when empty.
        training: "paired" (training_paired_images), "unpaired" (random pairs of the training images) or "auto".

    Returns:
        a summary: task, pairs per split, labels, keypoints, and the configs/ overlay suited to the task.
    """
    import json

    from monai_mine.data.learn2reg import learn2reg_datalist as to_datalist
    from monai_mine.data.learn2reg import read_learn2reg_task
    from monai_mine.io.atomic import atomic_write_text

    with _user_errors("learn2reg-datalist"):
        task = read_learn2reg_task(dataset)
        datalist = to_datalist(task, training=training)
        if out:
            atomic_write_text(out, json.dumps(datalist, indent=2) + "\n")
    splits = ", ".join(f"{split} {len(items)}" for split, items in datalist.items())
    pairs = [item for items in datalist.values() for item in items if FIXED_IMAGE in item]
    with_labels = sum(FIXED_LABEL in item for item in pairs)
    with_keypoints = sum("fixed_landmarks" in item for item in pairs)
    return (
        f"{task.name} ({task.pairings or 'pairing not stated'}, modalities {task.modalities}, shape {task.shape}): "
        f"{splits}; {with_labels} of {len(pairs)} pairs with labels, {with_keypoints} with keypoints; "
        f"overlay configs/{task.suggested_overlay()}" + (f"; datalist written to {out}" if out else "")
    )


def learn2reg_export(
    dataset: str,
    ddf_dir: str,
    out_dir: str,
    split: str = "validation",
    pattern: str = "{moving}_to_{fixed}_ddf.nii.gz",
    overwrite: bool = False,
) -> str:
    """Write a bundle's DDFs as Learn2Reg displacement files disp_FFFF_MMMM.nii.gz (fixed grid, voxels).

    Args:
        dataset: the task's *_dataset.json, or its folder.
        ddf_dir: the folder of DDFs, e.g. bundles/vtn_addd/eval/inference after the bundle's inference.
        out_dir: the submission folder.
        split: "validation" (registration_val), "test" (registration_test) or "training".
        pattern: a pair's DDF file name; {fixed}/{moving} are the image names without .nii.gz.
        overwrite: replace a submission folder of an earlier export as a whole.

    Returns:
        how many files were written, and where.
    """
    from monai_mine.apps.learn2reg import export_learn2reg

    with _user_errors("learn2reg-export"):
        overwrite = _switch(overwrite, "overwrite")
        written = export_learn2reg(dataset, ddf_dir, out_dir, split=split, pattern=pattern, overwrite=overwrite)
    return f"{len(written)} Learn2Reg displacement file(s) written to {Path(out_dir).resolve()}"


def learn2reg_evaluate(
    dataset: str, displacement_dir: str, split: str = "validation", out: str = "", masked: bool = False
) -> str:
    """Score Learn2Reg displacement files as the challenge does: DSC, HD95 (voxels), TRE (mm), LogJacDetStd.

    Args:
        dataset: the task's *_dataset.json, or its folder.
        displacement_dir: the folder of disp_*.nii.gz files.
        split: "validation" (registration_val), "test" (registration_test) or "training".
        out: write per-pair and aggregate results there as JSON (and a .csv table beside it).
        masked: restrict LogJacDetStd to the fixed images' masks (Learn2Reg does for NLST).

    Returns:
        one line per metric: mean, std and 30th percentile over the pairs.
    """
    from monai_mine.apps.learn2reg import LEARN2REG_METRICS, evaluate_learn2reg

    with _user_errors("learn2reg-evaluate"):
        masked = _switch(masked, "masked")
        results = evaluate_learn2reg(dataset, displacement_dir, split=split, out=out or None, masked=masked)
    lines = [f"{results['name']} {split}: {results['num_pairs']} pair(s)"]
    for metric, values in results["aggregates"].items():
        if metric in LEARN2REG_METRICS:
            lines.append(f"{metric}: mean {values['mean']:.4f}, std {values['std']:.4f}, 30% {values['30']:.4f}")
    return "\n".join(lines + ([f"results written to {out}"] if out else []))


@contextmanager
def _user_errors(command: str) -> Iterator[None]:
    """Turn bad input (missing or unreadable files, wrong shapes, unfit checkpoints) into a one-line error and exit
    status 1 instead of a traceback; the message names the file."""
    try:
        yield
    except (OSError, ValueError, FloatingPointError) as error:
        raise SystemExit(f"monai-mine {command}: error: {error}") from error
    except MemoryError as error:  # numpy's carries no message; ours name the input and the way out
        raise SystemExit(f"monai-mine {command}: error: {error or 'out of memory'}") from error


_PROGRESS_LOGGERS = ("monai_mine.apps.registration", "monai_mine.optimization")
"""The loggers whose INFO records are the registration's progress lines: the pairs and the instance optimisation."""


def _show_progress() -> None:
    """Print the registration's progress lines (INFO records of ``_PROGRESS_LOGGERS``) on stderr."""
    import logging

    for name in _PROGRESS_LOGGERS:
        progress = logging.getLogger(name)
        if not progress.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
            progress.addHandler(handler)
            progress.setLevel(logging.INFO)


def _stop_on_sigterm() -> None:
    """End on SIGTERM as on Ctrl-C, through Python's exception handling, so that the output lock is released and
    partial outputs are removed (SIGKILL cannot be caught: the next run to that output cleans up after it)."""
    import signal

    def stop(signum, frame):
        raise SystemExit(f"monai-mine: stopped by signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, stop)


SWITCH_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
"""What an on/off flag accepts besides fire's own ``--name``/``--noname`` (any case)."""


def _switch(value: object, flag: str) -> bool:
    """An on/off flag's value: ``True``/``False`` (``--name``, ``--noname``, ``--name True``) or a word of
    :data:`SWITCH_WORDS` (fire passes ``--name false`` on as the text ``"false"``, which ``bool()`` reads as on)."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in SWITCH_WORDS:
        return SWITCH_WORDS[word]
    raise ValueError(f"--{flag} takes true or false (or --{flag} / --no{flag}), got {value!r}.")


def _paths(value: str | Sequence[str] | None) -> list[str]:
    """File names from a flag given once, repeated (a list, see :func:`_typed_argv`), or as ``[a.nii.gz,b.nii.gz]``."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [os.fspath(str(item)) for item in value]
    text = str(value)
    if text.startswith("[") and text.endswith("]") and not os.path.exists(text):
        return [item.strip() for item in text[1:-1].split(",") if item.strip()]
    return [text]


def _takes_text(parameter: inspect.Parameter) -> bool:
    """Whether a command parameter is annotated as a string (``str``, ``str | None``, ``str | Sequence[str]``)."""
    return str(parameter.annotation).startswith("str")


def _typed_argv(command: Callable, argv: Sequence[str]) -> list[str]:
    """The arguments of ``command`` with the values of its string parameters quoted as Python string literals, so
    that fire passes them on exactly as typed.

    fire reads every value as a Python literal where it can: an output folder ``1e3`` would become the float
    1000.0, ``2024_01`` the integer 202401, ``0x1F`` 31, ``a,b`` a tuple and ``True``/``None`` those constants.
    Flags (``--name value``, ``--name=value``) and the positional values before the first flag are quoted when
    their parameter is a string; a string flag given several times (``--moving_label a --moving_label b``)
    becomes one list of strings (fire would keep only the last). Other values are left to fire.
    """
    parameters = inspect.signature(command).parameters
    text = {name for name, parameter in parameters.items() if _takes_text(parameter)}
    positional, flags, rest = [], {}, []
    index = 0
    while index < len(argv) and not argv[index].startswith("-"):
        positional.append(argv[index])
        index += 1
    while index < len(argv):
        item = argv[index]
        flag, equals, value = item.partition("=")
        name = flag[2:].replace("-", "_") if flag.startswith("--") else ""
        if name in text and (equals or index + 1 < len(argv)):
            if not equals:
                value, index = argv[index + 1], index + 1
            flags.setdefault(flag, []).append(value)
        else:
            rest.append(item)
        index += 1
    quoted = [repr(value) if name in text else value for name, value in zip(parameters, positional)]
    quoted += positional[len(quoted) :]
    for flag, values in flags.items():
        quoted += [flag, repr(values[0] if len(values) == 1 else values)]
    return quoted + rest


def register(
    fixed: str | None = None,
    moving: str | None = None,
    bundle: str | None = None,
    out: str | None = None,
    checkpoint: str | None = None,
    moving_label: str | Sequence[str] | None = None,
    instance_optimization: int | str = 0,
    device: str = "cpu",
    assume_affine: bool = False,
    overwrite: bool = False,
    model: str | None = None,
    datalist: str | None = None,
    split: str = "test",
    timings: bool = False,
    qc: bool = True,
) -> str:
    """Register a moving image to a fixed one (NIfTI, MetaImage, NRRD, MGZ, DICOM folder; any grid) with a bundle.

    Many pairs in one run (the bundle loaded once, a progress line per pair, one output folder per pair inside
    ``out``): ``--datalist pairs.json`` (items with fixed_image, moving_image and optionally moving_label; a list, or
    the ``--split`` of {"test": [...], ...}; paths relative to the JSON), or ``--fixed`` and ``--moving`` folders
    (images paired by file name), or ``--fixed`` an image and ``--moving`` a folder (every image to that one).

    Writes the folder ``out`` as a whole (refused if it holds earlier results, unless ``overwrite``), on the fixed
    image's grid with its affine: ``warped.nii.gz``; ``ddf.nii.gz``, an
    (X, Y, Z, 1, 3) vector NIfTI in fixed voxels (``warped(x) = moving(x + ddf(x))`` with the moving image resampled
    onto the fixed grid); ``warped_<label>.nii.gz`` per moving label map; ``jacobian.nii.gz``; ``qc.png`` (unless
    ``--noqc``). The
    warped image and labels take the fixed image's format (.mha, .nrrd, .mgz, .nii; NIfTI for a DICOM folder).

    Args:
        fixed: the fixed image.
        moving: the moving image.
        bundle: the bundle folder, e.g. bundles/vtn_addd.
        out: the output folder.
        checkpoint: weights instead of the bundle's models/model.pt (a state dict or a training checkpoint).
        moving_label: a label map of the moving image; repeat the flag (or pass "[a.nii.gz,b.nii.gz]") for more.
        instance_optimization: refine the DDF on the pair (the bundle's instance_optimizer: local correlation +
            diffusion): a preset, fast (25/25/0), balanced (50/50/10) or accurate (50/50/20); a schedule A/B/C of
            Adam steps on a grid of 32, then 64 voxels along the fixed image's longest axis, then at full
            resolution; or a whole number N, N steps on each of the 32- and 64-voxel grids (0: the network alone);
            each count from 0 to 10000. Progress is printed every 100 steps.
        device: "cpu" or "cuda".
        assume_affine: accept NIfTI files whose qform and sform codes are both 0 (nibabel's fallback affine).
        overwrite: replace an output folder that holds an earlier registration's results, as a whole.
        model: an exported network instead of the weights: <bundle>/models/model.ts, model.onnx (run by ONNX
            Runtime) or model.pt2 (torch.export), as `monai-mine export --format ...` writes them; the model record
            inside gives the working size and intensity normalisation.
        datalist: a datalist JSON of pairs to register in one run (instead of --fixed and --moving).
        split: the datalist's list of pairs.
        timings: print where the wall time went, from process start: imports, config parsing, model build and
            weight load, reading, resampling, network, instance optimisation, full-resolution warping, Jacobian, QC
            figure, writing.
        qc: draw the quality-control figure qc.png (--noqc or --qc false: skip it).

    Returns:
        timings, Jacobian statistics and the output folder.
    """
    from monai_mine.timing import StageTimer, process_seconds

    timer = StageTimer()
    started = process_seconds()
    if started is not None:
        timer.add("start-up (interpreter, command line)", started)
    _show_progress()
    with _user_errors("register"):
        if bundle is None or out is None or (datalist is None and (fixed is None or moving is None)):
            raise ValueError(
                "register needs --bundle, --out and either --fixed and --moving (images or folders) or --datalist."
            )
        timings = _switch(timings, "timings")
        with timer.stage("imports (torch, MONAI, monai_mine)"):
            from monai_mine.apps.registration import register_files
            from monai_mine.apps.registration.many import pairs_from_datalist, pairs_from_folders, register_pairs
        settings = {
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "instance_optimization": instance_optimization,
            "device": device,
            "assume_affine": _switch(assume_affine, "assume_affine"),
            "overwrite": _switch(overwrite, "overwrite"),
            "model": None if model is None else str(model),
            "timer": timer,
            "qc": _switch(qc, "qc"),
        }
        many = datalist is not None or Path(str(moving)).is_dir() and not _is_dicom_folder(Path(str(moving)))
        if many:
            if datalist is not None:
                pairs = pairs_from_datalist(str(datalist), str(split))
            else:
                pairs = pairs_from_folders(str(fixed), str(moving))
            reports = register_pairs(pairs, str(bundle), str(out), **settings)
            folding = [report.folding_percent for report in reports]
            lines = [
                f"registered {len(reports)} pairs into {Path(str(out)).resolve()}: folding at most "
                f"{max(folding):.3f} % (det <= 0), {sum(f > 1.0 for f in folding)} pair(s) above 1 %",
            ]
        else:
            settings["moving_labels"] = _paths(moving_label)
            report = register_files(str(fixed), str(moving), str(bundle), str(out), **settings)
            lines = [report.summary()]
    if timings:
        lines += ["", "wall time by stage:", timer.table(process_seconds())]
    return "\n".join(lines)


def _is_dicom_folder(folder: Path) -> bool:
    """Whether a folder is read as one DICOM series (it holds no image file of another format)."""
    from monai_mine.apps.registration.many import IMAGE_ENDINGS

    return not any(path.name.lower().endswith(IMAGE_ENDINGS) for path in folder.iterdir() if path.is_file())


def template(out: str = "mni", size: int = 128) -> str:
    """Write the ICBM152 2009 (MNI) brain template that the shipped bundle weights register to, as NIfTI.

    Writes ``t1.nii.gz`` (skull-stripped T1, [0, 1]), ``t2_like.nii.gz``, ``labels.nii.gz`` (1 CSF, 2 GM, 3 WM)
    and ``mask.nii.gz`` into ``out``: ``size``^3 voxels around the brain at ``192 / size`` mm in MNI (RAS) world
    coordinates, the grid of the brain benchmark (1.5 mm at 128^3). Needs nilearn (``pip install
    "monai-mine[benchmark]"``), which ships the template.

    Args:
        out: the output folder (created; files of the same names are replaced).
        size: voxels per axis.

    Returns:
        the written files.
    """
    from monai_mine.apps.template import build_template
    from monai_mine.io import save_nifti

    with _user_errors("template"):
        brain = build_template(int(size))
        folder = Path(out)
        volumes = {"t1": brain.t1, "t2_like": brain.t2_like, "labels": brain.labels, "mask": brain.mask.astype("uint8")}
        paths = [save_nifti(volume, folder / f"{name}.nii.gz", brain.affine) for name, volume in volumes.items()]
    return "\n".join(str(Path(path).resolve()) for path in paths)


def export(bundle: str, out: str | None = None, checkpoint: str | None = None, format: str = "torchscript") -> str:
    """Export a trained bundle network with its metadata, inference config and model record.

    Formats: torchscript (traced, <bundle>/models/model.ts, what MONAI Deploy loads), onnx (model.onnx, opset 20,
    run by ONNX Runtime; needs pip install "monai-mine[export]") and program (torch.export, model.pt2). ONNX and
    program take any spatial size that is a multiple of the network's total stride (at least twice it), batch 1.

    Args:
        bundle: the bundle folder, e.g. bundles/vtn_addd.
        out: the file to write (default <bundle>/models/model.ts, .onnx or .pt2).
        checkpoint: weights instead of the bundle's models/model.pt.
        format: torchscript, onnx or program.

    Returns:
        the file's path.
    """
    from monai_mine.bundle import export_bundle

    with _user_errors("export"):
        path = export_bundle(str(bundle), str(format), None if out is None else str(out), checkpoint)
    return f"exported {path}"


def warp(image: str, ddf: str, out: str, label: bool = False, device: str = "cpu") -> str:
    """Apply a saved DDF (as `register` writes it) to another image or label map; the result is on the DDF's grid.

    An input on another grid (e.g. the original moving image's) is sampled through world coordinates.

    Args:
        image: the image or label map.
        ddf: the DDF file.
        out: the output file.
        label: the input is a label map (nearest-neighbour sampling, integer output).
        device: "cpu" or "cuda".
    """
    from monai_mine.apps.registration import warp_file

    with _user_errors("warp"):
        return warp_file(str(image), str(ddf), str(out), label=_switch(label, "label"), device=device).summary()


def jacobian(ddf: str, out: str, device: str = "cpu") -> str:
    """Write the Jacobian determinant map of a saved DDF and print folding %, SDlogJ and min/max determinant.

    Args:
        ddf: the DDF file.
        out: the determinant map to write (on the DDF's grid).
        device: "cpu" or "cuda".
    """
    from monai_mine.apps.registration import jacobian_file

    with _user_errors("jacobian"):
        return jacobian_file(str(ddf), str(out), device=device).summary()


def bench_speed(argv: Sequence[str] = ()) -> None:
    """Speed and memory of the bundle networks against ANTs and Elastix; options: monai-mine bench-speed --help.

    Args:
        argv: the benchmark's command-line options (see ``monai_mine.apps.benchmark.speed``).
    """
    from monai_mine.apps.benchmark.speed import main as run_benchmark

    run_benchmark(list(argv))


def benchmark(
    out_dir: str = "benchmark_results",
    size: int = 128,
    pairs: int = 4,
    tracks: str | Sequence[str] = "mono,multimodal",
    methods: str | Sequence[str] = "identity,ants_syn,elastix,vtn_addd,vtn_addd_inv,miregnet,midiceregnet",
    checkpoints: str | dict | None = None,
    train_minutes: float = 2.0,
    seed: int = 0,
    work_dir: str | None = None,
    training_pairs: int = 32,
    image_size: int = 64,
    instance_optimization: int | str = 50,
) -> str:
    """Real-image benchmark on ICBM152 template pairs: identity, ANTs, Elastix and the bundles side by side.

    Needs the benchmark extra (pip install "monai-mine[benchmark]"). Writes results.md, results.json,
    boxplots_<track>.png and pair_<track>.png to out_dir; training data, checkpoints and per-pair files to work_dir.

    Args:
        out_dir: folder for the results.
        size: template grid edge (128: 1.5 mm voxels).
        pairs: test pairs per track.
        tracks: "mono" (T1 -> T1), "multimodal" (T2-like -> T1), or both, comma-separated.
        methods: comma-separated among identity, ants_syn, ants_vtn_paper (about 15 min per pair), elastix,
            vtn_addd, vtn_addd_inv, miregnet, midiceregnet, and identity+io, vtn_addd+io, ... (refined by instance
            optimisation).
        checkpoints: bundle=PATH or bundle/track=PATH entries, comma-separated; other bundles are trained here.
        train_minutes: training budget per bundle and track, wall-clock minutes.
        seed: benchmark seed (test, training and validation pairs get disjoint seeds from it).
        work_dir: folder for bulky intermediate files; default <out_dir>/work.
        training_pairs: training pairs per track for the bundles trained here.
        image_size: the bundles' working grid edge in training and registration.
        instance_optimization: Adam steps per level of the +io methods, a preset (fast, balanced, accurate) or a
            schedule A/B/C (the last level at full resolution).

    Returns:
        the Markdown tables and where the results are.
    """
    import logging

    from monai_mine.apps.benchmark.report import track_table
    from monai_mine.apps.benchmark.runner import run_benchmark

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with _user_errors("benchmark"):
        content = run_benchmark(
            out_dir,
            size=size,
            pairs=pairs,
            tracks=tracks,
            methods=methods,
            checkpoints=checkpoints,
            train_minutes=train_minutes,
            seed=seed,
            work_dir=work_dir,
            training_pairs=training_pairs,
            image_size=image_size,
            instance_optimization=instance_optimization,
        )
    tables = [f"track {track}\n{track_table(content['summary'], track)}" for track in content["summary"]]
    return "\n".join(tables) + f"\nresults in {Path(out_dir).resolve()}"


def main() -> None:
    """Entry point of the ``monai-mine`` console script."""
    commands = {
        "bench-speed": bench_speed,
        "benchmark": benchmark,
        "demo": demo,
        "export": export,
        "version": version,
        "learn2reg-datalist": learn2reg_datalist,
        "learn2reg-export": learn2reg_export,
        "learn2reg-evaluate": learn2reg_evaluate,
        "register": register,
        "template": template,
        "warp": warp,
        "jacobian": jacobian,
    }
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    _stop_on_sigterm()
    if name == "bench-speed":  # argparse options, passed through untouched
        bench_speed(sys.argv[2:])
        return
    argv = [name, *_typed_argv(commands[name], sys.argv[2:])] if name in commands else sys.argv[1:]
    fire.Fire(commands, command=argv, name="monai-mine")


def run() -> None:
    """The ``monai-mine`` console script and ``python -m monai_mine``: :func:`main`, then an exit that skips tearing
    down the interpreter's modules.

    After ``import monai`` about 5000 modules are loaded, and freeing them one by one at exit took about 1 s of the
    wall time a user waits for ``monai-mine register`` on a 2-core CPU (``benchmarks/results/speed.md``). By the
    time :func:`main` returns every output is written and closed (atomically), so the exit callbacks run (logging's
    flush and multiprocessing's clean-up among them), the standard streams are flushed, and the process ends. While
    a thread that is not a daemon still runs, the exit is the normal one (it waits for that thread). An error leaves
    through ``SystemExit`` as before; :func:`main` itself (called in tests and from Python) exits normally.
    """
    import atexit
    import threading

    main()
    others = [thread for thread in threading.enumerate() if thread is not threading.main_thread()]
    if any(thread.is_alive() and not thread.daemon for thread in others):
        return
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    run()
