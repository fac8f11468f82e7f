"""MPI distribution modes for ptyframe (a separate distribution: core never imports mpi4py)."""
