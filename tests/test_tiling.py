"""Tiles (``vidsr.tiling``): balanced cores, one window size, exact merges, merged regions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.models.interpolation import upscale
from vidsr.tiling import TileGrid


@pytest.mark.parametrize("tile,context", [(8, 3), (16, 3), (5, 4), (7, 0), (100, 3)])
@pytest.mark.parametrize("kernel", ["bicubic", "lanczos"])
def test_tiled_equals_untiled(tile, context, kernel):
    x = torch.rand(1, 1, 37, 53, generator=torch.Generator().manual_seed(0))
    whole = upscale(x, 2, kernel)
    grid = TileGrid(37, 53, tile, context)
    out = grid.new_output(x, 2)
    ids = list(range(len(grid)))
    for i in range(0, len(ids), 4):  # in batches, as the engine does
        chunk = ids[i : i + 4]
        grid.place(out, chunk, upscale(grid.extract(x, chunk), 2, kernel), 2)
    err = (out - whole).abs().max().item()
    if context >= 3:
        assert err < 1 / 255 / 100
    else:  # too little context: seams, which is what the context is for
        assert err > 1 / 255


def test_cores_partition_the_frame_and_windows_have_one_size():
    grid = TileGrid(50, 70, 16, 5)
    cover = np.zeros((50, 70), int)
    for t in grid.tiles:
        cover[t.y0 : t.y0 + t.h, t.x0 : t.x0 + t.w] += 1
        assert t.wy <= t.y0 and t.y0 + t.h <= t.wy + grid.win_h  # core inside its window
        assert 0 <= t.wy and t.wy + grid.win_h <= 50 and 0 <= t.wx and t.wx + grid.win_w <= 70
    assert (cover == 1).all()
    # 50 rows hold about 3 tiles of 16 (17+17+16), 70 columns about 4 (18+18+17+17)
    assert grid.shape == (3, 4)
    assert (grid.win_h, grid.win_w) == (17 + 10, 18 + 10)


@pytest.mark.parametrize("size,tile", [(200, 64), (400, 64), (540, 64), (161, 16), (63, 64), (20, 64), (1000, 37)])
def test_cores_are_balanced_with_no_sliver(size, tile):
    """An axis is cut into round(size / tile) cores whose lengths differ by at most one pixel (a
    200-px side with 64-px tiles: 67+67+66, not 64+64+64+8), and per-tile means and masks follow
    those cores exactly."""
    grid = TileGrid(size, 9, tile, 3)
    lengths = [t.h for t in grid.tiles[:: grid.cols]]
    assert sum(lengths) == size and len(lengths) == max(1, round(size / tile))
    assert max(lengths) - min(lengths) <= 1
    plane = torch.rand(1, 1, size * 2, 9 * 2, dtype=torch.float64)
    means = grid.tile_means(plane, scale=2)[0]
    mask = grid.core_mask(np.arange(len(grid)), scale=2)
    for i, t in enumerate(grid.tiles):
        core = plane[0, 0, t.y0 * 2 : (t.y0 + t.h) * 2, t.x0 * 2 : (t.x0 + t.w) * 2]
        assert means.flatten()[i].item() == pytest.approx(core.mean().item())
        assert (mask[t.y0 * 2 : (t.y0 + t.h) * 2, t.x0 * 2 : (t.x0 + t.w) * 2] == i).all()


def test_numpy_and_torch_backends_agree():
    x = np.random.default_rng(0).random((1, 1, 30, 41), dtype=np.float32)
    grid = TileGrid(30, 41, 8, 2)
    ids = [0, 3, 7, len(grid) - 1]
    np_tiles = grid.extract(x, ids)
    t_tiles = grid.extract(torch.from_numpy(x), ids).numpy()
    assert np.array_equal(np_tiles, t_tiles)
    out_np = grid.new_output(x, 1)
    out_np[:] = -1
    grid.place(out_np, ids, np_tiles, 1)
    for i in ids:
        t = grid.tiles[i]
        assert np.array_equal(out_np[0, 0, t.y0 : t.y0 + t.h, t.x0 : t.x0 + t.w], x[0, 0, t.y0 : t.y0 + t.h, t.x0 : t.x0 + t.w])


def test_core_mask_maps_tiles_to_pixels():
    grid = TileGrid(20, 30, 8, 2)
    mask = grid.core_mask(np.arange(len(grid)), scale=2)
    assert mask.shape == (40, 60)
    for i, t in enumerate(grid.tiles):
        assert (mask[t.y0 * 2 : (t.y0 + t.h) * 2, t.x0 * 2 : (t.x0 + t.w) * 2] == i).all()


def test_regions_cover_each_requested_tile_once_and_stay_bounded():
    grid = TileGrid(100, 130, 16, 4)
    rng = np.random.default_rng(0)
    ids = np.nonzero(rng.random(len(grid)) < 0.6)[0]
    regions = grid.regions(ids, max_side=3)
    covered = sorted(t for g in regions for t in g.tiles)
    assert covered == sorted(ids.tolist())
    longest = max(max(t.h, t.w) for t in grid.tiles)
    for g in regions:
        assert g.h <= 3 * longest and g.w <= 3 * longest
        assert g.wy0 == max(0, g.y0 - 4) and g.wy1 == min(100, g.y0 + g.h + 4)
    assert len(grid.regions(range(len(grid)), max_side=100)) == 1  # everything wanted: one window


@pytest.mark.parametrize("tile, stride", [(16, 4), (3, 4)])  # 3: cores no sampled row crosses
def test_tile_max_of_a_sampled_plane_is_the_largest_sampled_value_of_each_core(tile, stride):
    grid = TileGrid(37, 53, tile, 1)
    x = torch.rand(2, 1, 37, 53, generator=torch.Generator().manual_seed(4))
    got = grid.tile_max(x[..., ::stride, ::stride], stride=stride)
    rows = torch.arange(37) % stride == 0
    cols = torch.arange(53) % stride == 0
    for n in range(2):
        for i, t in enumerate(grid.tiles):
            r, c = divmod(i, grid.cols)
            core = x[n, 0, t.y0 : t.y0 + t.h, t.x0 : t.x0 + t.w][rows[t.y0 : t.y0 + t.h]][:, cols[t.x0 : t.x0 + t.w]]
            assert got[n, r, c] == (core.max() if core.numel() else -torch.inf)


def test_tile_max_is_the_largest_value_over_each_core():
    grid = TileGrid(37, 53, 16, 3)  # unequal cores
    x = torch.rand(2, 1, 37, 53, generator=torch.Generator().manual_seed(3))
    got = grid.tile_max(x)
    for n in range(2):
        for i, t in enumerate(grid.tiles):
            r, c = divmod(i, grid.cols)
            assert got[n, r, c] == x[n, 0, t.y0 : t.y0 + t.h, t.x0 : t.x0 + t.w].max()
