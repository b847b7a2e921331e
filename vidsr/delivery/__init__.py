"""Delivery: downscale for storage and shipping, so that vidsr's upscaler restores the picture better.

``codec_proxy`` is the differentiable stand-in for a video codec used while training and refining,
``downscaler`` turns frames into low-resolution frames (``--mode fast`` and ``--mode hcd``),
``hcd`` is the per-frame refinement, ``tags`` marks an output with the upscaler it was made for,
``training`` trains the learned downscaler against a frozen upscaler.
"""
