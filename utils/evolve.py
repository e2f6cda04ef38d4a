"""Genetic hyperparameter evolution (train.py --evolve): the search space and the mutation step."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from utils.metrics import fitness

# Hyperparameter evolution: (mutation scale 0-1, lower limit, upper limit) per hyperparameter
EVOLVE_META = {
    "lr0": (1, 1e-5, 1e-1),
    "lrf": (1, 0.01, 1.0),
    "momentum": (0.3, 0.6, 0.98),
    "weight_decay": (1, 0.0, 0.001),
    "warmup_epochs": (1, 0.0, 5.0),
    "warmup_momentum": (1, 0.0, 0.95),
    "warmup_bias_lr": (1, 0.0, 0.2),
    "box": (1, 0.02, 0.2),
    "cls": (1, 0.2, 4.0),
    "cls_pw": (1, 0.5, 2.0),
    "obj": (1, 0.2, 4.0),
    "obj_pw": (1, 0.5, 2.0),
    "iou_t": (0, 0.1, 0.7),
    "anchor_t": (1, 2.0, 8.0),
    "anchors": (2, 2.0, 10.0),
    "fl_gamma": (0, 0.0, 2.0),
    "hsv_h": (1, 0.0, 0.1),
    "hsv_s": (1, 0.0, 0.9),
    "hsv_v": (1, 0.0, 0.9),
    "degrees": (1, 0.0, 45.0),
    "translate": (1, 0.0, 0.9),
    "scale": (1, 0.0, 0.9),
    "shear": (1, 0.0, 10.0),
    "perspective": (0, 0.0, 0.001),
    "flipud": (1, 0.0, 1.0),
    "fliplr": (0, 0.0, 1.0),
    "mosaic": (1, 0.0, 1.0),
    "mixup": (1, 0.0, 1.0),
    "copy_paste": (1, 0.0, 1.0),
}
EVOLVE_RESULT_KEYS = ("metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95",
                      "val/box_loss", "val/obj_loss", "val/cls_loss")


def mutate_hyp(hyp: dict, meta: dict, evolve_csv: Path, rng: np.random.Generator) -> dict:
    """A new hyp: the fittest of the generations so far (top 5, fitness-weighted pick), randomly mutated, clipped."""
    hyp = dict(hyp)
    keys = [k for k in meta if k in hyp]
    if evolve_csv.exists():
        x = np.loadtxt(evolve_csv, ndmin=2, delimiter=",", skiprows=1)
        cols = [c.strip() for c in evolve_csv.read_text().splitlines()[0].split(",")]
        n = min(5, len(x))
        x = x[np.argsort(-fitness(x))][:n]
        w = fitness(x) - fitness(x).min() + 1e-6
        parent = x[rng.choice(n, p=w / w.sum())]
        for k in keys:
            if k in cols:
                hyp[k] = float(parent[cols.index(k)])
        mp, s = 0.8, 0.2  # mutation probability, sigma
        g = np.array([meta[k][0] for k in keys])  # per-key mutation scale
        v = np.ones(len(keys))
        while all(v == 1):  # mutate until something changes
            mutate = (rng.random(len(keys)) < mp) * rng.standard_normal(len(keys)) * rng.random() * s
            v = (g * mutate + 1).clip(0.3, 3.0)
        for k, vi in zip(keys, v):
            hyp[k] = hyp[k] * vi
    for k in keys:
        hyp[k] = round(min(max(hyp[k], meta[k][1]), meta[k][2]), 5)
    return hyp
