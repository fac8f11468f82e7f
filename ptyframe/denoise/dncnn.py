"""DnCNN (Zhang et al., IEEE TIP 2017) without batch norm, with RealSN-normalised convolutions.

The body is the plain DnCNN chain (``depth`` zero-padded 3x3 convolutions, ReLU between them,
no batch norm, biases kept)::

    N(x) = W_L * relu(... relu(W_2 * relu(W_1 * x + b_1) + b_2) ...) + b_L,   x: [B, 1, H, W]

Lipschitz bound. ReLU is 1-Lipschitz and biases do not change differences, so
``Lip(N) <= prod_l ||W_l||`` with ``||W_l||`` the operator norm of convolution ``l`` (RealSN
makes every factor <= 1, see ``realsn.py``). This is the sense in which the PINE paper
(Yamada et al. 2024, sec. 4.2) says "the entire operation is nonexpansive if each layer is":
the statement is about the *network* ``N``.

What is nonexpansive -- two structures (``structure``):

* ``"residual"`` (default, shipped; Ryu et al. 2019 and the PINE paper's eq. 21 literally):
  ``N`` predicts the noise and ``D = Id - N``. **The certified claim is ``Lip(N) <= 1``**
  (the residual network is nonexpansive). ``D`` itself is then only 2-Lipschitz in general
  (``||D x - D y|| <= ||x - y|| + ||N x - N y||``) and the PINE relaxation
  ``O <- (1 - rho) O + rho D(O) = O - rho N(O)`` is ``(1 + rho)``-Lipschitz; Ryu et al.'s
  convergence theorems assume exactly this kind of bound on the *residual*, not a
  nonexpansive ``D``. The HSD theorem the PINE paper cites (its eq. 12, Cohen et al. 2021)
  wants ``D`` nonexpansive, which RealSN on the layers does not give; measure ``D``'s local
  Lipschitz constant instead (``benchmarks/denoise_report.py`` reports Jacobian norms). The
  ``cpl`` family (``cpl.py``) is nonexpansive as ``D`` itself.
* ``"averaged"`` (Pesquet et al., SIAM J. Imaging Sci. 2021; Terris et al. 2020):
  ``D = (Id + N) / 2`` is *firmly* nonexpansive (the average of the identity and a
  nonexpansive map), hence nonexpansive as the HSD theorem requires, and so is its noise
  predictor ``R = (Id - N) / 2``. The price is denoising quality: ``N`` must carry the
  image through every norm-1 layer while computing features, so it denoises less than
  ``"residual"`` at the same size. Offered for users who need the theorem's hypothesis.

Training minimises the paper's eq. 21, ``||Y - D(X)||^2 = ||Y - (X - R(X))||^2``, with
``R = x - D(x)`` (``residual``) for either structure.

In both cases ``lipschitz_bound(model)`` returns ``prod_l ||W_l||`` (the bound on ``N``) and
``denoiser_lipschitz_bound`` the implied bound on ``D`` (``(1 + L)/2`` or ``1 + L``).

Padding: zeros (not circular), so ``D`` applied to a tile with a halo of ``depth`` pixels
gives exactly the whole-image result in the tile's interior (``apply.py`` stitches tiles that
way) and the object's opposite edges never mix; ``realsn.operator_norm_bound`` is a rigorous
bound for zero padding at every image size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptyframe.denoise.realsn import (
    RealSNConv2d,
    conv_layers,
    effective_weight,
    exact_normalise,
    operator_norm_bound,
)
from ptyframe.errors import ConfigError

STRUCTURES = ("averaged", "residual")


@dataclass(frozen=True)
class DncnnArch:
    """Architecture of a ``DnCNN``: what a weights file must record to be rebuilt."""

    depth: int = 5
    channels: int = 12
    kernel_size: int = 3
    image_channels: int = 1
    structure: str = "residual"
    downsample: int = 1

    def __post_init__(self) -> None:
        if self.depth < 2:
            raise ConfigError(f"DnCNN depth must be >= 2, got {self.depth}")
        if self.channels < 1 or self.image_channels < 1:
            raise ConfigError("DnCNN channels and image_channels must be >= 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"DnCNN kernel_size must be odd, got {self.kernel_size}")
        if self.downsample < 1:
            raise ConfigError(f"DnCNN downsample must be >= 1, got {self.downsample}")
        if self.structure not in STRUCTURES:
            raise ConfigError(
                f"DnCNN structure {self.structure!r} unknown; choose one of {STRUCTURES}"
            )

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


class DnCNN(nn.Module):
    """Denoise ``[B, C, H, W]`` float images: ``forward(x) = D(x) = x - R(x)``.

    ``realsn=True`` builds ``RealSNConv2d`` layers (training); ``realsn=False`` plain
    ``nn.Conv2d`` layers whose weights are already normalised (inference, shipped weights).
    """

    def __init__(self, arch: DncnnArch | None = None, realsn: bool = False, power_px: int = 32):
        super().__init__()
        self.arch = arch or DncnnArch()
        a = self.arch
        io = a.image_channels * a.downsample**2
        sizes = [io] + [a.channels] * (a.depth - 1) + [io]
        layers: list[nn.Conv2d] = []
        for cin, cout in zip(sizes[:-1], sizes[1:], strict=True):
            if realsn:
                layers.append(RealSNConv2d(cin, cout, a.kernel_size, power_px=power_px))
            else:
                layers.append(nn.Conv2d(cin, cout, a.kernel_size, padding=a.kernel_size // 2))
        self.layers = nn.ModuleList(layers)
        self.realsn = realsn

    @property
    def convs(self) -> list[nn.Conv2d]:
        """The layers, each a convolution (``RealSNConv2d`` while training)."""
        return conv_layers(self.layers)

    @property
    def receptive_radius(self) -> int:
        """Return how many pixels away an output pixel can see (``depth * (k - 1) / 2``)."""
        s = self.arch.downsample
        return s * self.arch.depth * (self.arch.kernel_size // 2) + s - 1

    def body(self, x: Tensor) -> Tensor:
        """Return ``N(x)``, the conv/ReLU chain, ``[B, C, H, W] -> [B, C, H, W]``.

        With ``downsample = s > 1`` the chain runs on ``pixel_unshuffle(x, s)`` (zero-padded to
        a multiple of ``s``) and the result is shuffled back and cropped (FFDNet's layout,
        Zhang et al. 2018); unshuffling is a permutation, so the Lipschitz bound is unchanged.
        """
        s = self.arch.downsample
        if s > 1:
            hh, ww = x.shape[-2:]
            ph, pw = (-hh) % s, (-ww) % s
            h = F.pixel_unshuffle(F.pad(x, (0, pw, 0, ph)) if ph or pw else x, s)
            return F.pixel_shuffle(self._chain(h), s)[..., :hh, :ww]
        return self._chain(x)

    def _chain(self, x: Tensor) -> Tensor:
        h = x
        last = len(self.layers) - 1
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < last:
                h = torch.relu(h)
        return h

    def residual(self, x: Tensor) -> Tensor:
        """Return the predicted noise ``R(x) = x - D(x)``."""
        n = self.body(x)
        if self.arch.structure == "residual":
            return n
        return 0.5 * (x - n)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``D(x)``: ``x - N(x)`` (residual) or ``(x + N(x)) / 2`` (averaged)."""
        n = self.body(x)
        if self.arch.structure == "residual":
            return x - n
        return 0.5 * (x + n)

    def exported(self, grid: int = 128) -> DnCNN:
        """Return a plain copy with every layer exactly normalised (``realsn.exact_normalise``)."""
        out = DnCNN(self.arch, realsn=False)
        out.layers = nn.ModuleList([exact_normalise(c, grid) for c in self.convs])
        return out.to(next(self.parameters()).device)


def layer_norm_bounds(model: DnCNN, grid: int = 128) -> list[float]:
    """Return the rigorous operator-norm bound of every layer's effective weight."""
    return [operator_norm_bound(effective_weight(conv), grid) for conv in model.convs]


def lipschitz_bound(model: DnCNN, grid: int = 128) -> float:
    """Return ``prod_l ||W_l||`` >= Lip(N), the Lipschitz bound of the network body."""
    prod = 1.0
    for n in layer_norm_bounds(model, grid):
        prod *= n
    return prod


def denoiser_lipschitz_bound(model: DnCNN, grid: int = 128) -> float:
    """Return the implied bound on ``Lip(D)``: ``(1 + L)/2`` (averaged) or ``1 + L`` (residual)."""
    lip = lipschitz_bound(model, grid)
    return 0.5 * (1.0 + lip) if model.arch.structure == "averaged" else 1.0 + lip
