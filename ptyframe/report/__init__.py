"""Gather runs and multiruns into tables, figures and an HTML page (``ptyframe report``)."""
