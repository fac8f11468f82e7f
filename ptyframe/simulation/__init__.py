"""ptyframe.simulation."""
