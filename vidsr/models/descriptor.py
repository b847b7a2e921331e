"""What every upscaler tells the rest of vidsr about itself: the model descriptor.

The tiler reads the tile constraints, the routers read the routes and their costs, the controller
reads the costs, ``--list-models`` prints all of it. An ``Upscaler`` pairs a descriptor with
something that upscales a batch of tiles; the networks and the interpolation kernels both are one.
Every model works on one plane, luma (Y' of video, or of RGB split into Y'CbCr); chroma goes
through interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Route:
    """One way through a model (a subnet width, an MLP upsampler, interpolation)."""

    name: str
    macs_per_pixel: float  # per HR output pixel


@dataclass(frozen=True)
class TileSpec:
    """Constraints on the LR tiles a model is run on."""

    context: int  # LR pixels of neighbourhood each side needed for a seamless merge
    min_size: int = 1  # smallest LR tile side the model accepts


@dataclass(frozen=True)
class ModelDescriptor:
    name: str  # registry name, e.g. "arm-wdsr"
    architecture: str
    scale: int
    params: int
    routes: tuple[Route, ...]  # cheapest first; the last is the full network
    tile: TileSpec
    router: str | None = None  # "arm", "pcsr", or None for a single route
    weights_file: str | None = None
    info: dict = field(default_factory=dict, compare=False)  # training provenance, validation PSNR

    @property
    def full_route(self) -> Route:
        return self.routes[-1]

    @property
    def macs_per_pixel(self) -> float:
        return self.full_route.macs_per_pixel

    def route(self, name: str) -> Route:
        for r in self.routes:
            if r.name == name:
                return r
        raise KeyError(f"{self.name} has no route {name!r}; routes: {[r.name for r in self.routes]}")


class Upscaler:
    """A descriptor plus a torch module that maps LR tiles (N, 1, h, w) in [0, 1] to HR tiles."""

    def __init__(self, descriptor: ModelDescriptor, module: torch.nn.Module, extras: dict | None = None):
        self.descriptor = descriptor
        self.module = module.eval()
        self.extras = extras or {}  # e.g. ARM's Edge-to-PSNR table, shipped inside the weights file
        self._subnets: dict = {}

    @property
    def scale(self) -> int:
        return self.descriptor.scale

    @property
    def device(self) -> torch.device:
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        p = next(self.module.parameters(), None)
        return p.dtype if p is not None else torch.float32

    def to(self, device=None, dtype=None) -> "Upscaler":
        self.module.to(device=device, dtype=dtype)
        self._subnets.clear()
        if self.device.type == "cpu":
            # oneDNN's convolutions run about twice as fast on NHWC as on NCHW tensors
            self.module.to(memory_format=torch.channels_last)
        return self

    def runner(self, route):
        """What runs ``route``: a supernet's materialised subnet (cached), else the module."""
        subnet = getattr(self.module, "subnet", None)
        if subnet is None:
            return lambda x: self.module(x, route)
        route = self.descriptor.full_route.name if route is None else route
        if route not in self._subnets:
            m = subnet(route).to(self.device, self.dtype)
            if self.device.type == "cpu":
                m = m.to(memory_format=torch.channels_last)
            self._subnets[route] = m
        return self._subnets[route]

    def differentiable(self, x: torch.Tensor) -> torch.Tensor:
        """The full network on whole frames (N, 1, h, w) with autograd on: the path delivery trains
        and refines downscalers against (tiling and routing are for inference)."""
        return self.module(x)

    @torch.inference_mode()
    def __call__(self, tiles: torch.Tensor, route: str | None = None) -> torch.Tensor:
        if tiles.device.type == "cpu":
            tiles = tiles.contiguous(memory_format=torch.channels_last)
        return self.runner(route)(tiles)
