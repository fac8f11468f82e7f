"""Read, write and validate the data-exchange HDF5 layout; describe scan geometry."""
