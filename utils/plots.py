"""Drawing and plotting: class colours, box annotation with cv2, batch mosaics, label statistics, result curves."""

from __future__ import annotations

import colorsys
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from utils.general import LOGGER, clip_boxes, increment_path, xywh2xyxy, xyxy2xywh


def agg_pyplot():
    """matplotlib.pyplot on the file-only Agg backend, chosen at call time so importing this module is free."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class Colors:
    """A fixed palette of distinct RGB colours, indexed by class: colors(i) or colors(i, bgr=True)."""

    def __init__(self, n: int = 20):
        """Spread n hues by the golden ratio so neighbouring class indices get unlike colours."""
        self.palette = []
        for i in range(n):
            h = (i * 0.618033988749895) % 1.0
            s, v = (0.85, 0.95) if i % 2 == 0 else (0.65, 0.80)
            self.palette.append(tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v)))
        self.n = n

    def __call__(self, i: int, bgr: bool = False) -> tuple[int, int, int]:
        """Colour of class i as an (r, g, b) tuple, or (b, g, r)."""
        c = self.palette[int(i) % self.n]
        return (c[2], c[1], c[0]) if bgr else c


colors = Colors()


class Annotator:
    """Draw boxes, labels and text on a uint8 HWC image with cv2's built-in font (nothing to download).

    Colours are used in the image's own channel order. font, pil and example are accepted so YOLOv5 call sites
    work unchanged; there is no PIL path, and characters outside ASCII are drawn as '?'.
    """

    def __init__(self, im: np.ndarray, line_width: int | None = None, font_size: float | None = None,
                 font: str = "", pil: bool = False, example: str = "abc"):
        """im is drawn on in place when it is a contiguous uint8 array."""
        if not isinstance(im, np.ndarray) or im.ndim != 3:
            raise TypeError(f"Annotator needs an HWC numpy image, got {type(im).__name__}"
                            f"{' of shape ' + str(im.shape) if hasattr(im, 'shape') else ''}")
        self.im = im if im.flags.c_contiguous and im.dtype == np.uint8 else np.ascontiguousarray(im, dtype=np.uint8)
        self.lw = line_width or max(round(sum(im.shape) / 2 * 0.003), 2)  # grows with image size
        self.tf = max(self.lw - 1, 1)  # text thickness
        # cv2's Hershey simplex glyphs are ~22 px tall at scale 1
        self.fs = font_size / 22 if font_size else self.lw / 3

    @staticmethod
    def _ascii(text: str) -> str:
        return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(text))

    def box_label(self, box, label: str = "", color: tuple = (128, 128, 128),
                  txt_color: tuple = (255, 255, 255)) -> None:
        """Draw an xyxy box with an optional filled label tag at its top-left corner."""
        p1, p2 = (int(box[0]), int(box[1])), (int(box[2]), int(box[3]))
        cv2.rectangle(self.im, p1, p2, color, thickness=self.lw, lineType=cv2.LINE_AA)
        if label:
            label = self._ascii(label)
            w, h = cv2.getTextSize(label, 0, fontScale=self.fs, thickness=self.tf)[0]
            outside = p1[1] - h - 3 >= 0  # tag above the box when there is room, else inside it
            p2 = (p1[0] + w, p1[1] - h - 3) if outside else (p1[0] + w, p1[1] + h + 3)
            cv2.rectangle(self.im, p1, p2, color, -1, cv2.LINE_AA)
            org = (p1[0], p1[1] - 2) if outside else (p1[0], p1[1] + h + 2)
            cv2.putText(self.im, label, org, 0, self.fs, txt_color, thickness=self.tf, lineType=cv2.LINE_AA)

    def rectangle(self, xy, fill: tuple | None = None, outline: tuple | None = None, width: int = 1) -> None:
        """Draw an xyxy rectangle, filled with fill and/or outlined with outline."""
        p1, p2 = (int(xy[0]), int(xy[1])), (int(xy[2]), int(xy[3]))
        if fill is not None:
            cv2.rectangle(self.im, p1, p2, fill, -1)
        if outline is not None:
            cv2.rectangle(self.im, p1, p2, outline, width)

    def text(self, xy, text: str, txt_color: tuple = (255, 255, 255), anchor: str = "top") -> None:
        """Write text with its top-left (anchor 'top') or bottom-left (anchor 'bottom') corner at xy."""
        text = self._ascii(text)
        h = cv2.getTextSize(text, 0, fontScale=self.fs, thickness=self.tf)[0][1]
        y = int(xy[1]) + (h if anchor == "top" else 0)
        cv2.putText(self.im, text, (int(xy[0]), y), 0, self.fs, txt_color, thickness=self.tf, lineType=cv2.LINE_AA)

    def result(self) -> np.ndarray:
        """The annotated image."""
        return self.im


def output_to_target(output: list[torch.Tensor], max_det: int = 300) -> np.ndarray:
    """Per-image NMS output [xyxy, conf, cls] to rows [batch_idx, cls, x, y, w, h, conf] for plot_images."""
    targets = []
    for i, o in enumerate(output):
        box, conf, cls = o[:max_det, :6].detach().cpu().float().split((4, 1, 1), 1)
        targets.append(torch.cat((torch.full_like(conf, i), cls, xyxy2xywh(box), conf), 1))
    return torch.cat(targets, 0).numpy() if targets else np.zeros((0, 7), dtype=np.float32)


def plot_images(images, targets, paths=None, fname: str | Path = "images.jpg", names=None,
                max_size: int = 1920, max_subplots: int = 16) -> np.ndarray:
    """Save a grid of up to 16 images with their boxes; rows [batch_idx, cls, x, y, w, h(, conf)] in pixels or
    normalised. Predictions (with conf) are drawn when conf > 0.25. Returns the RGB mosaic."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().float().numpy()
    if isinstance(targets, torch.Tensor):
        targets = targets.detach().cpu().float().numpy()
    targets = np.zeros((0, 6)) if targets is None else np.asarray(targets, dtype=np.float64)
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"plot_images expects a BCHW batch, got shape {images.shape}")
    if images.size and images.max() <= 1:
        images = images * 255  # de-normalise
    bs, _, h, w = images.shape
    bs = min(bs, max_subplots)
    ns = int(np.ceil(bs**0.5))  # subplots per side

    mosaic = np.full((ns * h, ns * w, 3), 255, dtype=np.uint8)
    for i in range(bs):
        x, y = w * (i // ns), h * (i % ns)
        mosaic[y:y + h, x:x + w] = images[i].transpose(1, 2, 0).clip(0, 255).astype(np.uint8)
    scale = max_size / ns / max(h, w)
    if scale < 1:
        h, w = math.ceil(scale * h), math.ceil(scale * w)
        mosaic = cv2.resize(mosaic, (ns * w, ns * h))

    fs = int((h + w) * ns * 0.01)  # font size grows with the grid
    annotator = Annotator(mosaic, line_width=max(round(fs / 10), 1), font_size=max(fs, 8))
    for i in range(bs):
        x, y = w * (i // ns), h * (i % ns)
        annotator.rectangle([x, y, x + w, y + h], None, (255, 255, 255), width=2)  # tile border
        if paths:
            annotator.text((x + 5, y + 5), Path(paths[i]).name[:40], txt_color=(220, 220, 220))
        ti = targets[targets[:, 0] == i]
        if not len(ti):
            continue
        boxes = xywh2xyxy(ti[:, 2:6])
        classes = ti[:, 1].astype(int)
        is_label = ti.shape[1] == 6  # ground truth has no confidence column
        conf = None if is_label else ti[:, 6]
        if boxes.max() <= 1.01:  # normalised coordinates
            boxes[:, [0, 2]] *= w
            boxes[:, [1, 3]] *= h
        elif scale < 1:
            boxes *= scale
        boxes[:, [0, 2]] += x
        boxes[:, [1, 3]] += y
        for j, box in enumerate(boxes.tolist()):
            if is_label or conf[j] > 0.25:
                cls = classes[j]
                name = names.get(cls, cls) if names else cls
                annotator.box_label(box, f"{name}" if is_label else f"{name} {conf[j]:.1f}", color=colors(cls))
    mosaic = annotator.result()
    cv2.imwrite(str(fname), np.ascontiguousarray(mosaic[..., ::-1]))  # RGB to BGR for cv2
    return mosaic


def plot_labels(labels: np.ndarray, names=(), save_dir: Path = Path("")) -> None:
    """Save labels.jpg (instances per class, box outlines, centre and width-height distributions) and
    labels_correlogram.jpg (pair plot of x, y, width, height).

    labels is (n, 5) [cls, x, y, w, h] normalised.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1, 5)
    if not len(labels):
        LOGGER.warning(f"WARNING no labels to plot, {Path(save_dir) / 'labels.jpg'} not written")
        return
    LOGGER.info(f"Plotting labels to {Path(save_dir) / 'labels.jpg'} and labels_correlogram.jpg... ")
    plt = agg_pyplot()
    c, b = labels[:, 0].astype(int), labels[:, 1:]
    nc = int(c.max()) + 1
    names = list(names.values()) if isinstance(names, dict) else list(names)

    fig, ax = plt.subplots(2, 2, figsize=(8, 8), tight_layout=True)
    ax = ax.ravel()
    counts = np.bincount(c, minlength=nc)
    bars = ax[0].bar(range(nc), counts, width=0.8)
    for i, bar in enumerate(bars):
        bar.set_color(np.array(colors(i)) / 255)
    ax[0].set_ylabel("instances")
    if 0 < len(names) < 30:
        ax[0].set_xticks(range(len(names)), names, rotation=90, fontsize=8)
    else:
        ax[0].set_xlabel("classes")

    # Outlines of up to 1000 boxes all centred in one square, to show the spread of shapes
    canvas = np.full((1000, 1000, 3), 255, dtype=np.uint8)
    for cls, (bw, bh) in zip(c[:1000], b[:1000, 2:] * 1000):
        x1, y1, x2, y2 = (int(v) for v in (500 - bw / 2, 500 - bh / 2, 500 + bw / 2, 500 + bh / 2))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colors(cls), 1)
    ax[1].imshow(canvas)
    ax[1].axis("off")

    for a, (i, j), (xl, yl) in zip(ax[2:], ((0, 1), (2, 3)), (("x", "y"), ("width", "height"))):
        a.hist2d(b[:, i], b[:, j], bins=50, range=[[0, 1], [0, 1]], cmap="Blues")
        a.set_xlabel(xl)
        a.set_ylabel(yl)
    ax[2].invert_yaxis()  # image coordinates: y grows downwards
    fig.savefig(Path(save_dir) / "labels.jpg", dpi=200)
    plt.close(fig)

    fig = labels_correlogram(b)
    fig.savefig(Path(save_dir) / "labels_correlogram.jpg", dpi=200)
    plt.close(fig)


def labels_correlogram(boxes: np.ndarray):
    """Pair plot of the normalised label boxes (n, 4) [x, y, width, height]: each variable's histogram on the
    diagonal, 2-D histograms of each pair below it, upper triangle left empty (v7.0's labels_correlogram.jpg)."""
    plt = agg_pyplot()
    names = ("x", "y", "width", "height")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    fig, ax = plt.subplots(4, 4, figsize=(8, 8), tight_layout=True)
    for i in range(4):
        for j in range(4):
            a = ax[i, j]
            if j > i:
                a.remove()
                continue
            if i == j:
                a.hist(boxes[:, i], bins=50, range=(0, 1), color="#3070b0", edgecolor="white", linewidth=0.3)
            else:
                # cmin leaves empty bins blank; vmin=0 keeps a bin holding a single box visibly blue
                a.hist2d(boxes[:, j], boxes[:, i], bins=50, range=[[0, 1], [0, 1]], cmap="Blues", cmin=1, vmin=0)
                a.set_ylim(0, 1)
            a.set_xlim(0, 1)
            if i == 3:
                a.set_xlabel(names[j])
            else:
                a.tick_params(labelbottom=False)
            if j == 0 and i > 0:
                a.set_ylabel(names[i])
    return fig


RESULTS_PANELS = (  # v7.0's 2x5 results.png: training losses and P, R on top, validation losses and mAPs below
    "train/box_loss", "train/obj_loss", "train/cls_loss", "metrics/precision", "metrics/recall",
    "val/box_loss", "val/obj_loss", "val/cls_loss", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95",
)
SEGMENT_PANELS = (  # v7.0's 2x8 segmentation results.png: losses, then box (B) and mask (M) metrics
    "train/box_loss", "train/seg_loss", "train/obj_loss", "train/cls_loss",
    "metrics/precision(B)", "metrics/recall(B)", "metrics/precision(M)", "metrics/recall(M)",
    "val/box_loss", "val/seg_loss", "val/obj_loss", "val/cls_loss",
    "metrics/mAP_0.5(B)", "metrics/mAP_0.5:0.95(B)", "metrics/mAP_0.5(M)", "metrics/mAP_0.5:0.95(M)",
)
CLASSIFY_PANELS = ("train/loss", "metrics/accuracy_top1", "val/loss", "metrics/accuracy_top5")  # 2x2 classification


def smooth(y: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Gaussian-smoothed copy of a 1-D series (edges mirrored); NaNs are left out of every weighted mean."""
    y = np.asarray(y, dtype=np.float64)
    r = int(4 * sigma + 0.5)
    if len(y) < 2 or r < 1:
        return y.copy()
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    idx = np.arange(-r, len(y) + r)
    period = 2 * len(y)  # mirror about the half-sample edges, repeating for kernels wider than the series
    idx = np.mod(idx, period)
    idx = np.where(idx >= len(y), period - 1 - idx, idx)
    padded = y[idx]
    ok = np.isfinite(padded)
    num = np.convolve(np.where(ok, padded, 0.0), k, mode="valid")
    den = np.convolve(ok.astype(np.float64), k, mode="valid")
    return np.divide(num, den, out=np.full(len(y), np.nan), where=den > 0)


def results_figure(frames: dict, panels: tuple[str, ...] = RESULTS_PANELS):
    """The results.png figure: two rows of panels (columns) against whole-number epochs, each CSV's values (dots)
    and their smoothed trend (dotted), with a legend. frames maps a label to a DataFrame with stripped names."""
    import pandas as pd
    from matplotlib.ticker import MaxNLocator

    plt = agg_pyplot()
    fig, ax = plt.subplots(2, len(panels) // 2, figsize=(1.2 * len(panels), 6), tight_layout=True)
    ax = ax.ravel()
    for label, data in frames.items():
        x = pd.to_numeric(data.iloc[:, 0], errors="coerce").to_numpy()
        for a, col in zip(ax, panels):
            if col not in data:
                continue
            y = pd.to_numeric(data[col], errors="coerce").to_numpy(dtype=np.float64)
            a.plot(x, y, marker=".", label=label, linewidth=2, markersize=8)
            a.plot(x, smooth(y), ":", label="smooth", linewidth=2)
    for a, col in zip(ax, panels):
        a.set_title(col, fontsize=12)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    shown = next((a for a in (ax[1], *ax) if a.get_lines()), None)  # v7.0's place, else the first drawn panel
    if shown is not None:
        shown.legend()
    return fig


def plot_results(file: str | Path = "path/to/results.csv", dir: str | Path = "") -> Path:
    """Save results.png beside the CSV (every results*.csv in dir if given): losses and metrics per epoch.

    Detection runs get v7.0's 2x5 panels, segmentation runs (a train/seg_loss column) its 2x8 ones, classification
    runs (metrics/accuracy_top1) 2x2 ones.
    """
    import pandas as pd

    files = sorted(Path(dir).glob("results*.csv")) if dir else [Path(file)]
    files = [f for f in files if f.is_file()]
    if not files:
        raise FileNotFoundError(f"No results.csv found: {Path(dir).resolve() if dir else Path(file).resolve()}")
    frames = {}
    for f in files:
        try:
            data = pd.read_csv(f)
            data.columns = [str(col).strip() for col in data.columns]  # YOLOv5 pads names for aligned text
            frames[f.stem] = data
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            LOGGER.warning(f"WARNING plot_results: skipping {f}: {e}")
    if not frames:
        raise ValueError(f"No readable results CSV among {[str(f) for f in files]}")
    panels = SEGMENT_PANELS if any("train/seg_loss" in d for d in frames.values()) else RESULTS_PANELS
    if any("metrics/accuracy_top1" in d for d in frames.values()):
        panels = CLASSIFY_PANELS
    for stem, data in frames.items():
        missing = [c for c in panels if c not in data]
        if missing:
            LOGGER.warning(f"WARNING plot_results: {stem}.csv has no column {', '.join(missing)}; panel left empty")
    fig = results_figure(frames, panels)
    out = files[0].parent / "results.png"
    fig.savefig(out, dpi=200)
    agg_pyplot().close(fig)
    return out


def plot_val_study(file: str | Path = "study.csv", save: str | Path | None = None) -> Path:
    """Save study.png from a val.py (or segment/val.py) --task study CSV: mAP against image size and inference time."""
    import pandas as pd

    file = Path(file)
    data = pd.read_csv(file)
    data.columns = [str(col).strip() for col in data.columns]
    plt = agg_pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(10, 4), tight_layout=True)
    maps = sorted((c for c in data.columns if c.startswith("mAP")), key=lambda c: "95" not in c)  # 50-95 first
    for col in maps:  # mAP50-95 and mAP50; segmentation's of boxes (B) and masks (M)
        style = ".-" if "95" in col else ".--"
        ax[0].plot(data["imgsz"], data[col], style, label=col)
        ax[1].plot(data["inference_ms"], data[col], style, label=col)
    ax[0].set_xlabel("image size (pixels)")
    ax[1].set_xlabel("inference time (ms/img)")
    for a in ax:
        a.set_ylabel("mAP")
        a.grid(alpha=0.3)
        a.legend(loc="lower right")
    out = Path(save) if save else file.with_suffix(".png")
    fig.savefig(out, dpi=200)
    plt.close(fig)
    return out


def feature_visualization(x: torch.Tensor, module_type: str, stage: int, n: int = 32,
                          save_dir: Path = Path("runs/detect/exp")) -> Path | None:
    """Save the first n feature maps of image 0 of a module's output as a PNG grid (and the full map as .npy)."""
    if "Detect" in module_type or not isinstance(x, torch.Tensor) or x.ndim != 4:
        return None
    _, channels, height, width = x.shape
    if height <= 1 or width <= 1:
        return None
    plt = agg_pyplot()
    f = Path(save_dir) / f"stage{stage}_{module_type.split('.')[-1]}_features.png"
    maps = x[0].detach().cpu().float()
    n = min(n, channels)
    fig, ax = plt.subplots(math.ceil(n / 8), 8, tight_layout=True, squeeze=False)
    ax = ax.ravel()
    plt.subplots_adjust(wspace=0.05, hspace=0.05)
    for i in range(len(ax)):
        if i < n:
            ax[i].imshow(maps[i].numpy())
        ax[i].axis("off")
    LOGGER.info(f"Saving {f}... ({n}/{channels})")
    fig.savefig(f, dpi=150, bbox_inches="tight")
    plt.close(fig)
    np.save(str(f.with_suffix(".npy")), x[0].detach().cpu().numpy())
    return f


def save_one_box(xyxy, im: np.ndarray, file: Path = Path("im.jpg"), gain: float = 1.02, pad: int = 10,
                 square: bool = False, BGR: bool = False, save: bool = True) -> np.ndarray:
    """Crop an xyxy box (enlarged by gain and pad) out of a BGR image; save it under a new name unless save=False."""
    b = xyxy2xywh(torch.as_tensor(xyxy, dtype=torch.float32).view(-1, 4))
    if square:
        b[:, 2:] = b[:, 2:].max(1)[0].unsqueeze(1)
    b[:, 2:] = b[:, 2:] * gain + pad
    xyxy = xywh2xyxy(b).long()
    clip_boxes(xyxy, im.shape)
    crop = im[int(xyxy[0, 1]):int(xyxy[0, 3]), int(xyxy[0, 0]):int(xyxy[0, 2]), :: (1 if BGR else -1)]
    if save:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        out = increment_path(Path(file).with_suffix(".jpg"))  # never overwrite an earlier crop
        cv2.imwrite(str(out), np.ascontiguousarray(crop if BGR else crop[..., ::-1]))
    return crop
