"""ptyframe.regularizers."""
