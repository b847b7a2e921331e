"""ARM's Edge-to-PSNR table and edge scores (``vidsr.routing.edge``)."""

from __future__ import annotations

import pytest
import torch

from vidsr.routing.edge import EdgePSNRTable, tile_edge_scores


def test_edge_table_lookup_returns_the_table_value():
    edges = torch.tensor([0.0, 10.0, 20.0, float("inf")])
    psnr = torch.tensor([[30.0, 25.0, 20.0], [31.0, 27.0, 23.0]])
    table = EdgePSNRTable(edges, psnr, ("bicubic", "w8"))
    got = table.lookup(torch.tensor([0.0, 9.9, 10.0, 15.0, 20.0, 500.0]))
    assert got.tolist() == [[30, 30, 25, 25, 20, 20], [31, 31, 27, 27, 23, 23]]


def test_edge_table_fit_bins_and_fills_gaps():
    scores = torch.tensor([1.0, 1.5, 9.0, 9.5])
    psnrs = torch.tensor([[40.0, 42.0, 30.0, 32.0]])
    table = EdgePSNRTable.fit(scores, psnrs, ("r",), bins=4)
    assert table.lookup(torch.tensor([1.2]))[0, 0] == pytest.approx(41.0)
    assert table.lookup(torch.tensor([9.2]))[0, 0] == pytest.approx(31.0)
    mid = table.lookup(torch.tensor([5.0]))[0, 0].item()
    assert 31.0 < mid < 41.0  # an empty bin between two filled ones is interpolated


def test_edge_score_is_mean_absolute_laplacian_on_0_255():
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4, 4] = 1.0 / 255  # one grey level up in the middle of the left-top 8x8 tile
    s = tile_edge_scores(x, 8)
    # |Laplacian| is 4 at the centre and 1 at its 4 neighbours: 8 over 64 pixels
    assert s.item() == pytest.approx(8 / 64)


def test_laplacian_equals_the_3x3_kernel_with_replicated_edges():
    from vidsr.routing.edge import laplacian_abs

    x = torch.rand(2, 1, 13, 17, generator=torch.Generator().manual_seed(0))
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    reference = torch.nn.functional.conv2d(torch.nn.functional.pad(x * 255, (1, 1, 1, 1), mode="replicate"), kernel).abs()
    assert torch.allclose(laplacian_abs(x), reference, atol=1e-3)
