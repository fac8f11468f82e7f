"""Hydra configs of ``ptyframe train-denoiser`` (``pkg://ptyframe_lightning.conf``)."""
