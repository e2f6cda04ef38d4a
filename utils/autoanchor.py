"""Anchor checks: anchor order against strides, best possible recall, and k-means + genetic anchor evolution."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from utils.general import LOGGER, colorstr
from utils.torch_utils import de_parallel

PREFIX = colorstr("AutoAnchor: ")


def check_anchor_order(m: nn.Module) -> None:
    """Reverse Detect's anchors in place when their size order disagrees with the stride order."""
    a = m.anchors.prod(-1).mean(-1).view(-1)  # mean anchor area per level
    da = a[-1] - a[0]
    ds = m.stride[-1] - m.stride[0]
    if da and (da.sign() != ds.sign()):
        LOGGER.info(f"{PREFIX}Reversing anchor order")
        m.anchors[:] = m.anchors.flip(0)


def dataset_wh(dataset, imgsz: int = 640, jitter: float = 0.0) -> np.ndarray:
    """Label widths and heights (n, 2) in pixels with each image's long side resized to imgsz, optionally jittered."""
    shapes = imgsz * dataset.shapes / dataset.shapes.max(1, keepdims=True)
    if jitter:  # random rescaling, so a recall check is not tuned to exactly one image scale
        shapes = shapes * np.random.uniform(1 - jitter, 1 + jitter, size=(shapes.shape[0], 1))
    parts = [lb[:, 3:5] * s for s, lb in zip(shapes, dataset.labels) if len(lb)]
    return np.concatenate(parts, 0).astype(np.float32) if parts else np.zeros((0, 2), np.float32)


def anchor_metric(k: torch.Tensor, wh: torch.Tensor, thr: float = 4.0) -> tuple[float, float]:
    """(best possible recall, anchors per target): a label counts when some anchor's wh ratio is within thr."""
    r = wh[:, None] / k[None]
    x = torch.min(r, 1 / r).min(2)[0]  # worst of the w and h ratios, per (label, anchor)
    best = x.max(1)[0]
    aat = (x > 1 / thr).float().sum(1).mean().item()
    bpr = (best > 1 / thr).float().mean().item()
    return bpr, aat


def check_anchors(dataset, model: nn.Module, thr: float = 4.0, imgsz: int = 640) -> None:
    """Report best possible recall of the model's anchors on the dataset; below 0.98 try evolved anchors."""
    m = de_parallel(model).model[-1]  # Detect
    wh = torch.tensor(dataset_wh(dataset, imgsz, jitter=0.1))
    if not len(wh):
        LOGGER.warning(f"{PREFIX}WARNING no labels in the dataset, anchor check skipped")
        return
    stride = m.stride.to(m.anchors.device).view(-1, 1, 1)
    anchors = m.anchors.clone() * stride  # pixels
    bpr, aat = anchor_metric(anchors.cpu().view(-1, 2).float(), wh, thr)
    s = f"\n{PREFIX}{aat:.2f} anchors/target, {bpr:.3f} Best Possible Recall (BPR). "
    if bpr > 0.98:
        LOGGER.info(f"{s}Current anchors are a good fit to dataset")
        return
    LOGGER.info(f"{s}Anchors are a poor fit to dataset, attempting to improve...")
    na = m.anchors.numel() // 2
    try:
        new = kmean_anchors(dataset, n=na, img_size=imgsz, thr=thr, gen=1000, verbose=False)
    except Exception as e:  # evolution is an improvement attempt; training can go on with the cfg anchors
        LOGGER.warning(f"{PREFIX}ERROR: {e}, keeping the original anchors")
        return
    new_bpr = anchor_metric(torch.tensor(new), wh, thr)[0]
    if new_bpr > bpr:
        new = torch.tensor(new, device=m.anchors.device).type_as(m.anchors)
        m.anchors[:] = new.clone().view_as(m.anchors)
        check_anchor_order(m)  # anchors must grow with stride
        m.anchors /= stride
        LOGGER.info(f"{PREFIX}Done: new anchors with BPR {new_bpr:.4f} saved to the model "
                    f"(optional: put them in the model *.yaml to use them in the future)")
    else:
        LOGGER.info(f"{PREFIX}Done: original anchors (BPR {bpr:.4f}) are better than new ones (BPR {new_bpr:.4f}), "
                    f"proceeding with the original anchors")


def _kmeans(x: np.ndarray, k: int, iters: int = 30) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding on rows of x; returns (k, d) centres."""
    rng = np.random  # the global generator, so that init_seeds makes the result reproducible
    centres = [x[rng.randint(len(x))]]
    for _ in range(1, k):
        d2 = ((x[:, None] - np.array(centres)[None]) ** 2).sum(-1).min(1)
        p = d2 / d2.sum() if d2.sum() > 0 else None
        centres.append(x[rng.choice(len(x), p=p)])
    centres = np.array(centres, dtype=np.float64)
    for _ in range(iters):
        assign = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        new = np.array([x[assign == j].mean(0) if (assign == j).any() else centres[j] for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    return centres


def kmean_anchors(dataset="./data/coco128.yaml", n: int = 9, img_size: int = 640, thr: float = 4.0,
                  gen: int = 1000, verbose: bool = True) -> np.ndarray:
    """Anchors (n, 2) in pixels, smallest first: k-means on label sizes, then genetic evolution of their fitness."""
    thr = 1 / thr

    def metric(k, wh):
        r = wh[:, None] / k[None]
        x = torch.min(r, 1 / r).min(2)[0]
        return x, x.max(1)[0]

    def anchor_fitness(k):
        _, best = metric(torch.tensor(k, dtype=torch.float32), wh)
        return (best * (best > thr).float()).mean().item()

    def print_results(k, verbose=True):
        k = k[np.argsort(k.prod(1))]  # sort by area
        x, best = metric(torch.tensor(k, dtype=torch.float32), wh0)
        bpr, aat = (best > thr).float().mean(), (x > thr).float().mean() * n
        s = (f"{PREFIX}thr={thr:.2f}: {bpr:.4f} best possible recall, {aat:.2f} anchors past thr\n"
             f"{PREFIX}n={n}, img_size={img_size}, metric_all={x.mean():.3f}/{best.mean():.3f}-mean/best, "
             f"past_thr={x[x > thr].mean():.3f}-mean: ")
        s += ", ".join(f"{round(w)},{round(h)}" for w, h in k)
        if verbose:
            LOGGER.info(s)
        return k

    if isinstance(dataset, str):  # a data YAML: build the training set just to read its labels
        from utils.dataloaders import LoadImagesAndLabels  # heavy (OpenCV); only this path needs it
        from utils.general import check_dataset, yaml_load

        data_dict = check_dataset(yaml_load(dataset))
        dataset = LoadImagesAndLabels(data_dict["train"], augment=True, rect=True)

    wh0 = dataset_wh(dataset, img_size)
    i = (wh0 < 3.0).any(1).sum()
    if i:
        LOGGER.warning(f"{PREFIX}WARNING Extremely small objects found: {i} of {len(wh0)} labels are <3 pixels in size")
    wh = wh0[(wh0 >= 2.0).any(1)].astype(np.float32)  # labels of at least 2 pixels
    if not len(wh):
        raise ValueError("no labels of at least 2 pixels to compute anchors from")

    if n <= len(wh):
        LOGGER.info(f"{PREFIX}Running kmeans for {n} anchors on {len(wh)} points...")
        s = wh.std(0)  # whiten, so w and h weigh the same in the distance
        s[s == 0] = 1
        k = _kmeans(wh / s, n) * s
    else:
        LOGGER.warning(f"{PREFIX}WARNING fewer labels than anchors, switching strategies from kmeans to random init")
        k = np.sort(np.random.rand(n * 2)).reshape(n, 2) * img_size
    wh, wh0 = torch.tensor(wh, dtype=torch.float32), torch.tensor(wh0, dtype=torch.float32)
    k = print_results(k, verbose=False)

    # Genetic evolution: mutate anchors multiplicatively, keep a mutation whenever fitness improves
    f, sh, mp, s = anchor_fitness(k), k.shape, 0.9, 0.1  # fitness, shape, mutation probability, sigma
    pbar = tqdm(range(gen), bar_format="{l_bar}{bar:10}{r_bar}")
    for _ in pbar:
        v = np.ones(sh)
        while (v == 1).all():  # mutate until something changes
            v = ((np.random.random(sh) < mp) * np.random.random() * np.random.randn(*sh) * s + 1).clip(0.3, 3.0)
        kg = (k.copy() * v).clip(min=2.0)
        fg = anchor_fitness(kg)
        if fg > f:
            f, k = fg, kg.copy()
            pbar.desc = f"{PREFIX}Evolving anchors with Genetic Algorithm: fitness = {f:.4f}"
            if verbose:
                print_results(k, verbose)
    return print_results(k).astype(np.float32)
