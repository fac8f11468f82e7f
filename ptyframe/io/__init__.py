"""ptyframe.io."""
