"""ptyframe-lightning: train PINE's nonexpansive DnCNN on dead-leaves images with Lightning.

Nothing heavy is imported here: ``ptyframe`` loads this distribution's entry point
(``ptyframe_lightning.plugin``) on every command, and Lightning is only imported when
``ptyframe train-denoiser`` runs.
"""

__version__ = "0.1.0"
