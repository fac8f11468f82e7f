"""ptyframe.distributed."""
