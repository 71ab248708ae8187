# Copyright (c) monai-mine contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0
"""What makes MIRegNet's two networks learn: short trainings on pairs whose answer is known.

Each variant trains one of the bundle's networks at 32^3 (8-channel widths, instance normalisation) for a number of
steps, batch 2, on synthetic pairs made from the brain benchmark's template: the moving image is the template's
T2-like rendering (or, with ``contrast``, that rendering under a new random contrast from
``configs/augment_contrast.json``'s ``RandContrastRemapd``) warped by a new random transform at every step, the
fixed image the T1 template. The AffineNet (moments pooling) sees random affine maps (``RandPairDeformd``: rotation
<= 10 degrees, scaling <= 10 %, translation <= 3 voxels); the DeformNet sees smooth deformations alone (up to 2
voxels at 5^3 control points, as after an affine stage). The loss is the similarity named (MINE with the bundle's
critic, MONAI's Parzen-window mutual information) plus ``smoothness`` times total variation for the DeformNet, or,
for ``epe``, the end-point error itself; the end-point error to the known answer is recorded either way, so the
table says how far each setting moved the network towards the right transform. A last table trains the MINE
critic alone on the aligned template pair, with and without standardised inputs.

    python benchmarks/miregnet_diagnostics.py --out_dir benchmarks/results
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from monai.losses import GlobalMutualInformationLoss

from monai_mine.apps.template import build_template
from monai_mine.flows import affine_to_ddf, warp
from monai_mine.io import atomic_write_text
from monai_mine.losses import EndPointErrorLoss, MINELoss, TotalVariationLoss
from monai_mine.networks import AffineNet, MINECritic, UNetDeformNet
from monai_mine.transforms import RandContrastRemapd, RandPairDeformd

SIZE = 32
AFFINE_STRIDES = [2, 2, 2, 1, 2, 1, 1, 1]  # the bundle's, one stride-2 level fewer: 32^3 ends at 2^3
CRITIC_LEARNING_RATE = 0.01


@dataclass
class Variant:
    """One short training of ``network`` (``"affine"`` or ``"deform"``); ``loss`` is ``"epe"``, ``"mine"`` or
    ``"gmi"``; ``smoothness`` weighs total variation (DeformNet only)."""

    name: str
    network: str
    loss: str
    learning_rate: float
    contrast: bool = False
    standardize: bool = True
    smoothness: float = 0.0


VARIANTS = [
    Variant("AffineNet: end-point error, lr 1e-3", "affine", "epe", 1e-3),
    Variant("AffineNet: end-point error, lr 1e-4", "affine", "epe", 1e-4),
    Variant("AffineNet: MINE, lr 1e-3", "affine", "mine", 1e-3),
    Variant("AffineNet: MINE, lr 1e-4", "affine", "mine", 1e-4),
    Variant("AffineNet: MINE, lr 1e-4, inputs not standardised", "affine", "mine", 1e-4, standardize=False),
    Variant("AffineNet: MINE, lr 1e-4, random contrast", "affine", "mine", 1e-4, contrast=True),
    Variant("AffineNet: Parzen mutual information, lr 1e-4", "affine", "gmi", 1e-4),
    Variant("DeformNet: MINE + TV 0.01, lr 1e-3", "deform", "mine", 1e-3, smoothness=0.01),
    Variant("DeformNet: MINE + TV 0.01, lr 1e-4", "deform", "mine", 1e-4, smoothness=0.01),
    Variant("DeformNet: MINE + TV 1, lr 1e-3", "deform", "mine", 1e-3, smoothness=1.0),
    Variant("DeformNet: MINE + TV 1, lr 1e-4", "deform", "mine", 1e-4, smoothness=1.0),
]


@functools.cache
def template_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The T2-like (moving source) and T1 (fixed) templates at 32^3, each (1, X, Y, Z) in [0, 1]; built once and
    shared by every variant, which must not modify them."""
    template = build_template(SIZE)
    return torch.from_numpy(template.t2_like)[None].float(), torch.from_numpy(template.t1)[None].float()


def train_variant(variant: Variant, steps: int, seed: int = 0) -> dict:
    """Train one variant; the end-point error (voxels) and the identity's, averaged over every 100 steps."""
    torch.manual_seed(seed)
    source, fixed = template_images()
    if variant.network == "affine":
        deform = RandPairDeformd(keys=["moving_image"], label_keys=[], deformation=0.0)
        channels = [8 * m for m in (1, 2, 4, 4, 8, 8, 16, 16)]
        network = AffineNet(channels=channels, strides=AFFINE_STRIDES, norm="instance", pooling="moments")

        def predict(image: torch.Tensor) -> torch.Tensor:
            return affine_to_ddf(*network.predict_affine(image), (SIZE,) * 3)

    else:
        deform = RandPairDeformd(
            keys=["moving_image"], label_keys=[], rotation=0.0, scaling=0.0, translation=0.0, deformation=2.0
        )
        network = predict = UNetDeformNet(channels=[8 * m for m in (1, 2, 4, 8, 8)], strides=[2, 2, 2, 2])
    deform.set_random_state(seed)
    remap = RandContrastRemapd(
        keys=["moving_image"], prob=0.8, bands=6, monotone_prob=0.5, bias=0.3, gamma=0.25, noise=0.05
    )
    remap.set_random_state(seed + 1)
    end_point_error, smoothness = EndPointErrorLoss(), TotalVariationLoss()
    groups = [{"params": network.parameters()}]
    similarity = None
    if variant.loss == "mine":
        similarity = MINELoss(MINECritic(), ema_decay=0.99, standardize=variant.standardize)
        groups.append({"params": similarity.parameters(), "lr": CRITIC_LEARNING_RATE})
    elif variant.loss == "gmi":
        similarity = GlobalMutualInformationLoss()
    optimizer = torch.optim.Adam(groups, lr=variant.learning_rate)
    errors, identity_errors, start = [], [], time.perf_counter()
    for _ in range(steps):
        moving, target = [], []
        for _ in range(2):
            pair = deform({"moving_image": source.clone(), "target_ddf": torch.zeros(3, SIZE, SIZE, SIZE)})
            if variant.contrast:
                pair = remap(pair)
            moving.append(pair["moving_image"])
            target.append(pair["target_ddf"])
        moving, target = torch.stack(moving), torch.stack(target)
        batch_fixed = fixed[None].expand_as(moving)
        ddf = predict(torch.cat([moving, batch_fixed], dim=1))
        error = end_point_error(ddf, target)
        loss = error if similarity is None else similarity(warp(moving, ddf), batch_fixed)
        if variant.smoothness:
            loss = loss + variant.smoothness * smoothness(ddf)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        errors.append(error.item())
        identity_errors.append(float(end_point_error(torch.zeros_like(target), target)))
    blocks = range(0, steps, 100)
    return {
        **asdict(variant),
        "steps": steps,
        "seconds": round(time.perf_counter() - start, 1),
        "error": [round(float(np.mean(errors[i : i + 100])), 3) for i in blocks],
        "identity_error": [round(float(np.mean(identity_errors[i : i + 100])), 3) for i in blocks],
    }


def train_critic(standardize: bool, steps: int, seed: int = 0) -> dict:
    """The MINE critic alone on the aligned T2-like and T1 templates: its bound (nats) every 50 steps."""
    torch.manual_seed(seed)
    source, fixed = template_images()
    loss = MINELoss(MINECritic(), ema_decay=0.99, standardize=standardize)
    optimizer = torch.optim.Adam(loss.parameters(), lr=CRITIC_LEARNING_RATE)
    moving, batch_fixed = source[None].repeat(2, 1, 1, 1, 1), fixed[None].repeat(2, 1, 1, 1, 1)
    bounds = []
    for _ in range(steps):
        value = loss(moving, batch_fixed)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        bounds.append(-value.item())
    return {
        "standardize": standardize,
        "steps": steps,
        "bound": [round(float(np.mean(bounds[i : i + 50])), 3) for i in range(0, steps, 50)],
    }


def markdown(results: list[dict], critics: list[dict], command: str) -> str:
    """The two tables."""
    steps = results[0]["steps"]
    columns = [f"{i + 1}-{min(i + 100, steps)}" for i in range(0, steps, 100)]
    lines = [
        "# MIRegNet: what makes its networks learn",
        "",
        f"Command: `{command}`",
        "",
        f"Each network alone at {SIZE}^3, batch 2, a new random pair at every step (T2-like moving, T1 fixed, "
        "known answer; the AffineNet's pairs differ by an affine map, the DeformNet's by a smooth deformation). "
        "End-point error to the known answer, voxels, mean over each block of 100 steps; the identity's in the "
        "last column (same draws for every variant of a network).",
        "",
        "| variant | " + " | ".join(f"steps {c}" for c in columns) + " | identity |",
        "|---|" + "---:|" * (len(columns) + 1),
    ]
    for result in results:
        cells = " | ".join(f"{value:.2f}" for value in result["error"])
        identity = np.mean(result["identity_error"])
        lines.append(f"| {result['name']} | {cells} | {identity:.2f} |")
    critic_steps = critics[0]["steps"]
    critic_columns = [f"{i + 1}-{min(i + 50, critic_steps)}" for i in range(0, critic_steps, 50)]
    lines += [
        "",
        "MINE critic alone on the aligned T2-like / T1 templates (learning rate 0.01): Donsker-Varadhan bound, nats, "
        "mean over each block of 50 steps.",
        "",
        "| critic inputs | " + " | ".join(f"steps {c}" for c in critic_columns) + " |",
        "|---|" + "---:|" * len(critic_columns),
    ]
    for critic in critics:
        name = "standardised" if critic["standardize"] else "[0, 1] as they come"
        lines.append(f"| {name} | " + " | ".join(f"{value:.3f}" for value in critic["bound"]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default="benchmarks/results")
    parser.add_argument("--steps", type=int, default=500, help="training steps of each variant")
    parser.add_argument("--critic_steps", type=int, default=200)
    parser.add_argument("--variants", default="", help="comma-separated indices into VARIANTS (default: all)")
    args = parser.parse_args(argv)
    chosen = [VARIANTS[int(i)] for i in args.variants.split(",")] if args.variants else VARIANTS
    results = []
    for variant in chosen:
        results.append(train_variant(variant, args.steps))
        print(json.dumps(results[-1]), flush=True)
    critics = [train_critic(standardize, args.critic_steps) for standardize in (True, False)]
    print(json.dumps(critics))
    command = shlex.join(["python", "benchmarks/miregnet_diagnostics.py", *(sys.argv[1:] if argv is None else argv)])
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = "miregnet_diagnostics"
    atomic_write_text(out / f"{name}.json", json.dumps({"variants": results, "critic": critics}, indent=1) + "\n")
    atomic_write_text(out / f"{name}.md", markdown(results, critics, command))


if __name__ == "__main__":
    main()
