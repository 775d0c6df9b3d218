//go:build !linux

package sockio

import "net"

// PeerClosed reports false: only Linux's POLLRDHUP tells a closed peer
// without reading.
func PeerClosed(net.Conn) bool { return false }
