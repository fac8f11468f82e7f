"""ptyframe.metrics."""
