"""Read data files (reader components: data-exchange, CXI, NXcxi_ptycho, PtyLab), prepare the
detector frames, validate them, and describe the scan geometry."""
