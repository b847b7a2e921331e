"""CPU threads for a frame's work.

Networks get all of torch's threads, or as many as the fps controller finds fastest in a busy
pipeline (``frame``); the rest of a frame's work (conversions, edge scores, planning) is small and
memory-bound and runs on one thread (``light``), beside the decoder's and encoder's threads. On a
GPU none of this applies and every context is a no-op.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

# torch's thread count outside every setting of ours (None: not inside one), so that an engine made
# while another runs its bookkeeping on one thread still takes the process's count as its own
_outside: int | None = None


class TorchThreads:
    def __init__(self, device: torch.device):
        self.all = _outside or torch.get_num_threads()
        self.cpu = device.type == "cpu" and self.all > 1
        self._network = self.all  # this frame's setting

    def options(self) -> tuple[int, ...]:
        """Network thread counts worth choosing among in a busy pipeline: all of torch's, or one."""
        return (self.all, 1) if self.cpu else (self.all,)

    def light(self):
        """One thread for a frame's bookkeeping."""
        return self._set(1)

    def network(self):
        """The frame's network threads, for a network pass (inside ``light``)."""
        return self._set(self._network)

    @contextmanager
    def frame(self, n: int | None):
        """Network passes inside run on ``n`` threads (None: all of torch's)."""
        before = self._network
        self._network = n or self.all
        try:
            yield
        finally:
            self._network = before

    @contextmanager
    def _set(self, n: int):
        global _outside
        if not self.cpu:
            yield
            return
        before, outermost = torch.get_num_threads(), _outside is None
        if outermost:
            _outside = before
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)
            if outermost:
                _outside = None
