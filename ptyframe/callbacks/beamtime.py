"""The callbacks for a beamtime: validation without truth, following a growing file, live view.

``beamtime_callbacks(cfg)`` returns them for ``callbacks.core`` (always on, each a no-op
unless its data is there):

* ``validation_error`` (``ValidationErrorCallback``): ``data.validation_fraction``;
* ``follow`` (``FollowCallback``): ``data.follow``, ``data.follow_timeout_s``;
* ``live_outputs`` (``LiveOutputs``): ``output.live_every_s`` while following.
"""

from __future__ import annotations

from typing import Any

from ptyframe.callbacks.base import Callback
from ptyframe.callbacks.follow import FollowCallback
from ptyframe.callbacks.live import LiveOutputs
from ptyframe.callbacks.validation import ValidationErrorCallback

#: Always-on callbacks of this module and the config that sets each.
BEAMTIME: dict[str, str] = {
    "validation_error": "data.validation_fraction, metrics.every",
    "follow": "data.follow, data.follow_timeout_s",
    "live_outputs": "output.live_every_s (while following)",
}


def beamtime_callbacks(cfg: Any) -> list[Callback]:
    """Return the validation, follow and live-output callbacks configured by ``cfg``."""
    return [
        ValidationErrorCallback(cfg.metrics),
        FollowCallback(),
        LiveOutputs(float(cfg.output.live_every_s), bool(cfg.output.images)),
    ]
