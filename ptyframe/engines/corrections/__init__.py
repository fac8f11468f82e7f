"""The experiment's nuisances as corrections owned by the engine frame (issue #25).

``positions`` (position correction, LSQML's position gradient) with ``affine`` (the global
scan map), ``opr`` (orthogonal probe relaxation), ``flux`` (a scalar per pattern); each a
``base.Correction``. ``position_kernels`` computes the position sums in numba for the fused
sweep.
"""
