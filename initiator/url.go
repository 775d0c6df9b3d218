package initiator

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// NamespaceURL names one namespace of an NVM subsystem behind a fabric
// address: SCHEME://HOST[:PORT]/NQN/NSID, the form the bench's nvme-tcp and
// nvme-rdma engines and the GPU loader take, e.g.
//
//	tcp://10.0.0.1:4420/nqn.2026-12.io.flashpath:ckpt/1
//	rdma://10.0.0.2/nqn.2026-12.io.flashpath:ckpt/3   (port 4420)
//
// Several addresses, comma-separated, are paths to the same namespace
// (ConnectMultipath):
//
//	tcp://10.0.0.1:4420,10.0.0.2:4420/nqn.2026-12.io.flashpath:ckpt/1
type NamespaceURL struct {
	Transport string // "tcp" or "rdma"
	Addr      string // host:port, or several, comma-separated (Addrs)
	NQN       string
	NSID      uint32
}

// Addrs returns each path's host:port.
func (u NamespaceURL) Addrs() []string { return strings.Split(u.Addr, ",") }

// String formats u back into its URL.
func (u NamespaceURL) String() string {
	return fmt.Sprintf("%s://%s/%s/%d", u.Transport, u.Addr, u.NQN, u.NSID)
}

// ParseURL parses a namespace URL; scheme, when not empty, is the only
// transport accepted. A missing port is 4420.
func ParseURL(s, scheme string) (NamespaceURL, error) {
	ex := "tcp"
	if scheme != "" {
		ex = scheme
	}
	want := "want " + ex + "://HOST:PORT/NQN/NSID, e.g. " + ex + "://127.0.0.1:4420/nqn.2026-11.io.flashpath:demo/1"
	// By hand rather than url.Parse: a list of addresses is no URL host.
	sch, rest, ok := strings.Cut(s, "://")
	authority, upath, _ := strings.Cut(rest, "/")
	upath, err := url.PathUnescape(upath)
	if !ok || err != nil || authority == "" || sch != "tcp" && sch != "rdma" || scheme != "" && sch != scheme {
		return NamespaceURL{}, fmt.Errorf("namespace URL %q: %s", s, want)
	}
	path := strings.Trim(upath, "/")
	i := strings.LastIndex(path, "/")
	if i <= 0 {
		return NamespaceURL{}, fmt.Errorf("namespace URL %q: no NQN/NSID path; %s", s, want)
	}
	nsid, err := strconv.ParseUint(path[i+1:], 10, 32)
	if err != nil || nsid == 0 {
		return NamespaceURL{}, fmt.Errorf("namespace URL %q: NSID %q is not a positive number; %s", s, path[i+1:], want)
	}
	hosts := strings.Split(authority, ",")
	for j, h := range hosts {
		if h == "" {
			return NamespaceURL{}, fmt.Errorf("namespace URL %q: an empty address in the list; %s", s, want)
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			hosts[j] = net.JoinHostPort(strings.Trim(h, "[]"), DefaultPort)
		}
	}
	return NamespaceURL{Transport: sch, Addr: strings.Join(hosts, ","), NQN: path[:i], NSID: uint32(nsid)}, nil
}
