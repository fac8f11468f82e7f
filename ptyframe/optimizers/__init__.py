"""ptyframe.optimizers."""
