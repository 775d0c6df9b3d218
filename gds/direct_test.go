package gds

import (
	"errors"
	"strings"
	"testing"
)

// TestDecideDirect: a shard goes straight into GPU memory only from a
// remote whose transport reaches it, onto one GPU, whose memory can be
// registered (dma-buf, else nvidia-peermem); otherwise it stages and the
// reason says why.
func TestDecideDirect(t *testing.T) {
	rdma := directInput{want: PathAuto, remote: true, gpus: 1, dmabuf: true}
	with := func(f func(*directInput)) directInput { in := rdma; f(&in); return in }
	for _, tc := range []struct {
		name string
		in   directInput
		mode directMode
		why  string
	}{
		{"dma-buf", rdma, viaDMABuf, "dma-buf (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED=1)"},
		{"explicit rdma", with(func(in *directInput) { in.want = PathRDMA }), viaDMABuf, "dma-buf"},
		{"peermem", with(func(in *directInput) { in.dmabuf, in.peermem = false, true }), viaAddr, "nvidia-peermem"},
		{"neither", with(func(in *directInput) { in.dmabuf = false }), viaStaging,
			"GPU has no dma-buf support (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED=0) and nvidia-peermem is not loaded"},
		{"attribute error", with(func(in *directInput) { in.dmabuf, in.dmabufErr = false, errors.New("boom") }), viaStaging, "boom"},
		{"tcp", with(func(in *directInput) { in.gpuDirect = errors.New("NVMe/TCP moves data through host memory") }), viaStaging,
			"NVMe/TCP moves data through host memory"},
		{"not a DeviceRemote", with(func(in *directInput) { in.gpuDirect = errNoDeviceRemote }), viaStaging, "cannot read into GPU memory"},
		{"local file", with(func(in *directInput) { in.remote = false }), viaStaging, "local file"},
		{"several GPUs", with(func(in *directInput) { in.gpus = 2 }), viaStaging, "tensors of this shard are placed on several GPUs"},
		{"bounce asked", with(func(in *directInput) { in.want = PathBounce }), viaStaging, "gpu path bounce"},
	} {
		mode, why := decideDirect(tc.in)
		if mode != tc.mode || !strings.Contains(why, tc.why) {
			t.Errorf("%s: %v, %q; want %v, a reason naming %q", tc.name, mode, why, tc.mode, tc.why)
		}
		if mode == viaStaging && !strings.Contains(directFix(tc.in), "gpu path auto") {
			t.Errorf("%s: the fix %q does not name gpu path auto", tc.name, directFix(tc.in))
		}
	}
}
