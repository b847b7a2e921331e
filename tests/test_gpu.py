"""CuPy tiling kernels against the numpy reference. Needs CUDA and CuPy (``.[gpu]``); skipped
elsewhere, so CI (no GPU) skips it and a lent GPU machine runs it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.tiling import TileGrid

cupy = pytest.importorskip("cupy")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_cupy_extract_and_place_match_numpy(dtype, scale):
    rng = np.random.default_rng(0)
    frame = rng.random((1, 1, 67, 93)).astype(dtype)
    grid = TileGrid(67, 93, 16, 5)
    ids = rng.permutation(len(grid))[: len(grid) // 2]
    ref_tiles = grid.extract(frame, ids)
    gpu_tiles = grid.extract(cupy.asarray(frame), ids)
    assert np.array_equal(cupy.asnumpy(gpu_tiles), ref_tiles)
    up = np.repeat(np.repeat(ref_tiles, scale, axis=2), scale, axis=3)
    ref_out = np.zeros((1, 1, 67 * scale, 93 * scale), dtype)
    grid.place(ref_out, ids, up, scale)
    gpu_out = cupy.zeros_like(cupy.asarray(ref_out))
    grid.place(gpu_out, ids, cupy.asarray(up), scale)
    assert np.array_equal(cupy.asnumpy(gpu_out), ref_out)


def test_torch_cuda_tensors_use_the_kernels_and_agree():
    x = torch.rand(1, 1, 40, 50, device="cuda")
    grid = TileGrid(40, 50, 8, 3)
    ids = list(range(len(grid)))
    assert torch.equal(grid.extract(x, ids).cpu(), torch.from_numpy(grid.extract(x.cpu().numpy(), ids)))
