"""Reconstruction engines: PIE family, PINE, autodiff; each yields per-epoch reports."""
