package topo

import (
	"fmt"
	"net"

	"github.com/Mellanox/rdmamap"
	"github.com/vishvananda/netlink"
)

func rdmaDevices() []string { return rdmamap.GetRdmaDeviceList() }

// netDevsOf finds the net devices whose RDMA device is dev.
func netDevsOf(dev string) []NetDev {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	var out []NetDev
	for _, l := range links {
		a := l.Attrs()
		if r, err := rdmamap.GetRdmaDeviceForNetdevice(a.Name); err != nil || r != dev {
			continue
		}
		out = append(out, NetDev{Name: a.Name, State: a.OperState.String(), MTU: a.MTU, MAC: a.HardwareAddr.String()})
	}
	return out
}

// routeDev names the net device the kernel routes ip through.
func routeDev(ip string) (string, error) {
	a := net.ParseIP(ip)
	if a == nil {
		return "", fmt.Errorf("%q is not an IP address", ip)
	}
	routes, err := netlink.RouteGet(a)
	if err != nil || len(routes) == 0 {
		return "", fmt.Errorf("route to %s: %v", ip, err)
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", err
	}
	return l.Attrs().Name, nil
}

// rdmaDeviceOf names the RDMA device on net device netdev, or "".
func rdmaDeviceOf(netdev string) string {
	r, err := rdmamap.GetRdmaDeviceForNetdevice(netdev)
	if err != nil {
		return ""
	}
	return r
}
