"""Integer-scale interpolation kernels (``vidsr.models.interpolation``) against PIL."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vidsr.models.interpolation import phase_weights, upscale


@pytest.mark.parametrize("kernel,pil", [("bicubic", Image.Resampling.BICUBIC), ("lanczos", Image.Resampling.LANCZOS)])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_kernels_match_pil_inside_the_frame(kernel, pil, scale):
    rng = np.random.default_rng(scale)
    x = rng.random((23, 31), dtype=np.float32)
    ours = upscale(torch.from_numpy(x)[None, None], scale, kernel)[0, 0].numpy()
    ref = np.asarray(Image.fromarray(x, mode="F").resize((31 * scale, 23 * scale), pil))
    m = 3 * scale  # PIL renormalises taps at the border, we replicate edge pixels: compare inside
    assert np.abs(ours - ref)[m:-m, m:-m].max() < 1e-5


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_phase_weights_sum_to_one_and_preserve_constants(scale):
    for row in phase_weights("lanczos", scale) + phase_weights("bicubic", scale):
        assert abs(sum(row) - 1) < 1e-9
    flat = torch.full((1, 1, 9, 9), 0.4)
    assert torch.allclose(upscale(flat, scale, "lanczos"), torch.full((1, 1, 9 * scale, 9 * scale), 0.4))
