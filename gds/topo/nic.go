package topo

import (
	"net"
	"strings"
)

// NICFor names the NIC that traffic to addr ("host:port" or a bare IP)
// leaves through, for reports: the net device the kernel routes addr
// through ("lo" for 127.0.0.1, "eth0") and, for rdma, the RDMA device on
// it ("rxe0 on eth0", "mlx5_0 on ens1f0np0"). It returns "" where the
// route is unknown (a name that does not resolve here, or no netlink).
func NICFor(transport, addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if net.ParseIP(host) == nil {
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return ""
		}
		host = ips[0].String()
	}
	dev, err := routeDev(host)
	if err != nil {
		return ""
	}
	if transport == "rdma" {
		if r := rdmaDeviceOf(dev); r != "" {
			return r + " on " + dev
		}
	}
	return dev
}
