"""Callbacks: everything a run does around ``engine.step``, one concern per class.

The loop (``ptyframe.loop.run_loop``) only calls ``engine.step(epoch)`` and then each
callback's hooks; every other behaviour of a run lives in one class here:

=================  ========================================================  ==============
callback           what it does                                              configured by
=================  ========================================================  ==============
``truth_metrics``  metrics against the dataset's ground truth                ``metrics.*``
``guard``          stop on a non-finite state or an exploding error;         ``guard.*``
                   keep and restore the last good state
``history``        one row of values per epoch                               (always)
``progress``       a bar on a terminal, a plain line every few seconds       ``progress*``
``checkpoint``     resume, periodic ``checkpoint.h5``, a checkpoint on stop  ``output.*``,
                                                                             ``resume``
``signals``        SIGINT/SIGTERM: stop with the state saved (agreed on MPI) (always)
``convergence``    "not converged" and noise-floor warnings at the end       (always)
``outputs``        ``recon.h5``, ``config.yaml``, ``recon.cxi``, the PNGs    ``output.*``
``validation_``    the data error of held-out patterns (no truth needed)     ``data.*``
``error``
``follow``         patterns of a growing file join the run                   ``data.follow*``
``live_outputs``   while following: recon.h5 and images every few seconds    ``output.*``
``early_stop``     end the run when the data error stops falling             ``callbacks=``
=================  ========================================================  ==============

Extra callbacks (the registered kind ``callback``, third-party ones included) are added with
``+callback@callbacks.KEY=NAME`` or a preset of the Hydra group ``callbacks``.
"""
