"""Hydra config groups of ptyframe-mpi (found as ``pkg://ptyframe_mpi.conf``)."""
