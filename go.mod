module github.com/flashpath/flashpath

go 1.26.0

require github.com/spf13/cobra v1.10.2

require (
	github.com/Mellanox/rdmamap v1.2.0 // indirect
	github.com/NVIDIA/go-nvml v0.13.4-1 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
