package gds

// DMABufSupported reports whether the GPU's memory can be exported as a
// dma-buf (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED), which Buffer.ExportDMABuf
// needs and an RDMA NIC registers with ibv_reg_dmabuf_mr. Where it cannot
// (proprietary kernel modules, older drivers), GPU memory reaches a NIC
// only by address through nvidia-peermem.
func (d *Device) DMABufSupported() (bool, error) {
	return d.dev.DMABufSupported()
}
