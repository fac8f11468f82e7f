"""Define what a forward model is: the physics the autodiff engine optimises.

A forward model maps the unknowns of a reconstruction (object, probe, positions, geometry)
to the intensities a detector measures, differentiably, so that
``ptyframe.engines.autodiff.AutodiffEngine`` can fit them to the patterns (Adorym, Du et al.,
Opt. Express 2021, doi:10.1364/OE.418296, supplement Algorithm 1). The engine calls, in this order::

    state   = model.init_state(state, dataset)     once: reshape the runner's starting state
    model.setup(geometry, n_angles)                 in prepare: wavelength, pixel size, ...
    unknowns = model.unknowns(state)                every quantity it reads, by name
    for each minibatch (a ``Batch``: tiles of one angle):
        I = model.predict(v, batch)                 v = {name: physical value}, differentiable
        phase, absorption = model.fields(v)         only when the run has regularizers
    after each epoch:
        model.end_epoch(v, state, epoch)            e.g. shrink-wrap a support
        model.store(v, state)                       derived quantities back into the state

``v`` holds, for every name of ``unknowns``, the tensor ``param * scale`` the optimiser
differentiates; an ``Unknown`` (``ptyframe.physics.objects``) names the group that optimises
it (object, probe, positions, geometry), its power-of-two scale, whether it is fixed and a
constraint applied after every step. ``predict`` returns intensities ``[B, M, N]`` real
(float32/float64), in FFT order (zero frequency at ``[0, 0]``) for a far-field detector, as
the engine's patterns are.

Optional capabilities are typed attributes with defaults, read by the engine as they are:

* ``multi_angle`` (class attribute, default False): the model reads every angle at once (the
  engine is given one ``Measurements`` per angle; ptycho-tomography);
* ``buffer_px`` (default 0): the probe window is larger than the patterns by this many
  pixels on every side (near field: the exit wave is formed on a larger window and cropped
  at the detector);
* ``fields``, ``store``, ``end_epoch``: default to "no regularizer fields", "nothing derived"
  and "no support update".

The Gauss-Newton preconditioning of the object and probe gradients
(``ptyframe.engines.autodiff_precondition``) needs the probe-times-object structure of
``ptyframe.physics.multislice.PtychoModel``; a model that subclasses it gets it, any other
model is optimised with its groups' plain optimizers. ``docs/extending/forward-models.md``
writes and registers a small model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np
import torch

from ptyframe.errors import ConfigError

if TYPE_CHECKING:
    from ptyframe.data.geometry import ScanGeometry
    from ptyframe.physics.objects import Unknown
    from ptyframe.state import ReconstructionState


class ModelData(Protocol):
    """What a model reads of the dataset in ``init_state`` (a ``PtychoDataset`` is one)."""

    @property
    def geometry(self) -> ScanGeometry: ...

    @property
    def n_angles(self) -> int: ...

    def intensities(self, angle: int = 0) -> np.ndarray:
        """Return the centred intensities ``[n, M, N]`` of angle ``angle``."""
        ...


@dataclass
class Batch:
    """A minibatch: tiles ``[B]`` (int64 rows of the file's positions) of one angle index."""

    angle: int
    tiles: torch.Tensor


class ForwardModel(ABC):
    """The physics the autodiff engine optimises (see the module docstring).

    Subclasses write ``setup``, ``unknowns`` and ``predict``; the rest has defaults.
    """

    #: The model reads every angle at once (prepare gets one ``Measurements`` per angle).
    multi_angle: ClassVar[bool] = False

    @property
    def buffer_px(self) -> int:
        """Pixels by which the probe window exceeds the patterns on every side (0: none)."""
        return 0

    def init_state(self, state: ReconstructionState, dataset: ModelData) -> ReconstructionState:
        """Return the starting state for this model (default: ``state`` unchanged).

        Models whose unknowns differ from one 2-D slice and a probe of the patterns' size
        (several slices, a volume, a buffered probe) reshape the runner's state here;
        ``dataset`` is the run's ``PtychoDataset`` (what a model may read of it: ``ModelData``).
        """
        return state

    @abstractmethod
    def setup(self, geometry: ScanGeometry, n_angles: int = 1) -> None:
        """Fix what the geometry gives (wavelength, pixel size, distances, tile count)."""

    @abstractmethod
    def unknowns(self, state: ReconstructionState) -> dict[str, Unknown]:
        """Return every quantity the model reads, by name (values owned by ``state``)."""

    @abstractmethod
    def predict(self, v: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        """Return modelled intensities ``[B, M, N]`` (real; FFT order if far field)."""

    def fields(self, v: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the (phase shift, absorption) fields ``[S, Ny, Nx]`` regularizers act on."""
        raise ConfigError(
            f"forward model {type(self).__name__} gives no phase/absorption fields, so "
            "regularizers cannot act on it; remove the regularizers from the run"
        )

    def store(self, v: dict[str, torch.Tensor], state: ReconstructionState) -> None:
        """Write quantities derived from the unknowns into ``state`` (default: none).

        The engine has already copied every unknown's value into its tensor of ``state``.
        """

    def end_epoch(self, v: dict[str, torch.Tensor], state: ReconstructionState, epoch: int) -> bool:
        """Update what changes once per epoch (a support); return whether anything did."""
        return False
