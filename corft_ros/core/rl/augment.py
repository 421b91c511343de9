"""Image augmentation for training: random shift (replicate-pad by `pad` pixels, crop back at a random
offset per image), the standard augmentation for small-image visuomotor policies."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """images [..., C, H, W] float → same shape, each image shifted by an integer offset in [-pad, pad]²."""
    if pad <= 0:
        return images
    shape = images.shape
    x = images.reshape(-1, *shape[-3:])
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dev = x.device
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu").to(dev)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu").to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev)[None, :])[:, :, None]  # [n, h, 1]
    cols = (ox[:, None] + torch.arange(w, device=dev)[None, :])[:, None, :]  # [n, 1, w]
    idx = torch.arange(n, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx, rows, cols]  # [n, h, w, c]
    return out.permute(0, 3, 1, 2).reshape(shape)
