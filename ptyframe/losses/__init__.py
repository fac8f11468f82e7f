"""ptyframe.losses."""
