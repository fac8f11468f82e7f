"""Example third-party ptyframe plugin: ePIE whose step sizes decay over the epochs."""
