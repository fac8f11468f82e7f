"""Propagators and forward models (no unknowns inside); conventions in ``physics.fft``."""
