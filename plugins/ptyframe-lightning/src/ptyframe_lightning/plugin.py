"""Give ``ptyframe`` its ``train-denoiser`` subcommand (the ``ptyframe_commands`` hook).

Kept import-light: Lightning, Hydra's compose API and torch load only when the command runs.
"""

from __future__ import annotations

from ptyframe.hookspecs import hookimpl


def train_denoiser(argv: list[str]) -> int:
    """Train the nonexpansive DnCNN denoiser on dead-leaves images (Lightning; Hydra overrides)."""
    from ptyframe_lightning.train import main

    return main(argv)


@hookimpl
def ptyframe_commands() -> dict[str, object]:
    """Return ``{"train-denoiser": train_denoiser}``."""
    return {"train-denoiser": train_denoiser}
