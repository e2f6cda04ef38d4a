"""Class-activation heatmaps of a detection model with the grad-cam package: EigenCAM and Grad-CAM.

EigenCAM projects a layer's activations onto their first principal component, so it needs no gradients and runs on
the fused inference model as is. Grad-CAM weights the layer's channels by the gradient of a detection score; here the
score is the sum of the confidences (objectness x class) of every prediction above the confidence threshold, so the
map shows what the detections as a whole depend on.
"""

from __future__ import annotations

import copy

import cv2
import numpy as np
import torch
import torch.nn as nn

from utils.general import LOGGER

CAM_METHODS = ("eigen", "gradcam")


class _Predictions(nn.Module):
    """The detection model returning only its decoded predictions (B, anchors, 5 + nc), as grad-cam expects."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y[0] if isinstance(y, (list, tuple)) else y


class DetectionScore:
    """Grad-CAM target: summed confidence of one image's predictions above conf_thres (the best one if none is)."""

    def __init__(self, conf_thres: float = 0.25):
        self.conf_thres = conf_thres

    def __call__(self, pred: torch.Tensor) -> torch.Tensor:
        conf = (pred[:, 4:5] * pred[:, 5:]).amax(1)
        keep = conf > self.conf_thres
        return conf[keep].sum() if keep.any() else conf.max()


def principal_projection(activations: np.ndarray) -> np.ndarray:
    """Per image (B, C, H, W) -> (B, H, W): centred activations projected on their first principal component.

    An SVD fixes a component only up to its sign, and grad-cam clamps negative values to zero afterwards, so a flipped
    sign would keep the wrong half of the map. The sign is chosen so that the projection grows with the activation
    energy (the L2 norm over channels): where the layer responds strongly is where the heat is.
    """
    out = []
    for a in np.nan_to_num(activations.astype(np.float64)):
        flat = a.reshape(a.shape[0], -1).T  # (H*W, C)
        centred = flat - flat.mean(0)
        vt = np.linalg.svd(centred, full_matrices=False)[2]
        proj = centred @ vt[0]
        energy = np.linalg.norm(flat, axis=1)
        if np.dot(proj - proj.mean(), energy - energy.mean()) < 0:
            proj = -proj
        out.append(proj.reshape(a.shape[1:]))
    return np.float32(out)


class DetectionCAM:
    """Heatmaps of one layer of a DetectionModel: __call__(BCHW input) -> (B, H, W) maps in [0, 1] at input size."""

    def __init__(self, model: nn.Module, method: str = "eigen", layer: int | None = None, conf_thres: float = 0.25):
        if method not in CAM_METHODS:
            raise ValueError(f"--cam: unknown method '{method}', expected one of {', '.join(CAM_METHODS)}")
        layers = getattr(model, "model", None)
        if not isinstance(layers, nn.Sequential) or len(layers) < 2:
            raise TypeError(f"--cam needs a PyTorch DetectionModel (layers in .model), got {type(model).__name__}")
        last = len(layers) - 2  # the last layer before Detect
        layer = last if layer is None else layer
        if not 0 <= layer <= last:
            raise ValueError(f"--cam-layer {layer} is out of range: the model has layers 0..{last} before Detect")
        self.method, self.layer, self.conf_thres = method, layer, conf_thres
        from pytorch_grad_cam import EigenCAM, GradCAM  # lazy: a heavy import that detect.py only needs with --cam

        if method == "eigen":

            class SignedEigenCAM(EigenCAM):
                def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
                    return principal_projection(activations)

            self.model = _Predictions(model)
            self.cam = SignedEigenCAM(self.model, [layers[layer]])
        else:
            # autograd refuses tensors made under inference mode (detect.py loads the model there): work on a copy
            with torch.inference_mode(False):
                m = copy.deepcopy(model).float()
                for p in m.parameters():
                    p.data = p.data.clone()
                    p.requires_grad_(False)
            self.model = _Predictions(m)
            self.cam = GradCAM(self.model, [m.model[layer]])
            self.cam.compute_input_gradient = True  # frozen weights: the graph starts at the input
        LOGGER.info(f"CAM: {method} on layer {layer} ({type(layers[layer]).__name__})")

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        """Heatmaps of a BCHW batch in [0, 1], one (H, W) map per image."""
        targets = [DetectionScore(self.conf_thres)] * x.shape[0]
        if self.method == "eigen":
            with torch.no_grad():
                return self.cam(input_tensor=x, targets=targets)
        with torch.inference_mode(False), torch.enable_grad():
            x = x.detach().clone().float()
            return self.cam(input_tensor=x, targets=targets)


def unletterbox(heat: np.ndarray, shape0: tuple[int, ...]) -> np.ndarray:
    """Map an (H, W) map of the letterboxed input back onto the original image (h0, w0): crop the padding, resize."""
    h1, w1 = heat.shape[:2]
    h0, w0 = shape0[:2]
    gain = min(h1 / h0, w1 / w0)
    dw, dh = (w1 - round(w0 * gain)) / 2, (h1 - round(h0 * gain)) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)  # the split letterbox uses
    bottom, right = h1 - round(dh + 0.1), w1 - round(dw + 0.1)
    return cv2.resize(np.ascontiguousarray(heat[top:bottom, left:right]), (w0, h0), interpolation=cv2.INTER_LINEAR)


def overlay_cam(im0: np.ndarray, heat: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """A BGR uint8 image with a JET heatmap of heat (same height and width, values in [0, 1]) blended over it."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = cv2.cvtColor(im0, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    out = show_cam_on_image(rgb, np.clip(heat, 0, 1), use_rgb=True, image_weight=weight)
    return cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
