"""RAAR / difference-map ptychography engine for ptyframe (a third-party plugin)."""
