"""Hydra configuration of ptyframe, importable as ``ptyframe_conf`` (``pkg://ptyframe_conf``)."""
