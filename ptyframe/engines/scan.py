"""Hold where each pattern's probe window sits: the scan as the fast engines use it.

A position ``p = (y, x)`` (top-left corner in object pixels, float) splits into the integer
corner ``floor(p)``, where the object window ``O_r = S_r(O)`` is cut, and the fraction
``f = p - floor(p)`` in ``[0, 1)`` by which the probe is moved with the Fourier shift
theorem, ``T_f P = F^-1[F(P) r_f]`` with the separable ramps ``r_f = ry (x) rx``
(``ptyframe.physics.subpixel``, ``ptyframe.physics.fft``). One ``ScanWindows`` serves every
fast engine (the sequential sweeps read ``cy``, ``cx`` as Python ints, the batched ones
``corners``); ``move`` takes new positions when a correction refines them, and the ramps are
made again only then.
"""

from __future__ import annotations

import torch

from ptyframe.errors import ConfigError
from ptyframe.physics.fft import shift_ramp_factors
from ptyframe.physics.patches import check_inside, split_positions


class ScanWindows:
    """The windows of ``n`` positions on an object of ``object_shape`` (module docstring)."""

    def __init__(
        self,
        positions_px: torch.Tensor,
        window: tuple[int, int],
        object_shape: tuple[int, int],
        device: torch.device | str = "cpu",
    ) -> None:
        self.window = (int(window[0]), int(window[1]))
        self.object_shape = (int(object_shape[0]), int(object_shape[1]))
        self.device = torch.device(device)
        self.move(positions_px)

    def move(self, positions_px: torch.Tensor) -> None:
        """Take new positions ``[n, 2]`` (y, x) px; raise ``ConfigError`` if a window leaves
        the object."""
        pos = positions_px.detach().to("cpu", torch.float64)
        try:
            check_inside(pos, self.window, self.object_shape)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        corners, frac = split_positions(pos)
        self.positions_px = pos
        #: integer corners ``[n, 2]`` int64 (CPU)
        self.corners = corners
        #: the corners as Python ints (what a per-position loop indexes with)
        self.cy: list[int] = corners[:, 0].tolist()
        self.cx: list[int] = corners[:, 1].tolist()
        #: fractional parts ``[n, 2]`` float64 on the unknowns' device
        self.frac = frac.to(self.device)
        #: whether each position needs a sub-pixel shift
        self.shifted_at: list[bool] = (frac != 0).any(dim=1).tolist()
        #: whether any does
        self.shifted = any(self.shifted_at)
        self._ramps: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def n(self) -> int:
        return len(self.cy)

    def ramps(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the separable shift ramps ``(ry [n, M], rx [n, N])`` of ``dtype`` (cached)."""
        if dtype not in self._ramps:
            self._ramps[dtype] = shift_ramp_factors(self.frac, self.window, dtype)
        return self._ramps[dtype]

    def box(self, idx: torch.Tensor) -> tuple[int, int, int, int]:
        """Return ``(y0, y1, x0, x1)``: the smallest object region holding the windows ``idx``."""
        c = self.corners[idx.cpu()]
        m, n = self.window
        y0, x0 = c.min(0).values.tolist()
        y1, x1 = c.max(0).values.tolist()
        return int(y0), int(y1) + m, int(x0), int(x1) + n
