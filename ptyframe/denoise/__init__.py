"""ptyframe.denoise."""
