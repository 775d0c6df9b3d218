package initiator

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
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
// transport accepted. Each HOST is a host name, an IPv4 address or an
// IPv6 address in brackets; a missing port is 4420.
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
		hp, err := joinHostPort(h, DefaultPort, false)
		if err != nil {
			return NamespaceURL{}, fmt.Errorf("namespace URL %q: address %q: %w", s, h, err)
		}
		hosts[j] = hp
	}
	return NamespaceURL{Transport: sch, Addr: strings.Join(hosts, ","), NQN: path[:i], NSID: uint32(nsid)}, nil
}

// hostForms is what joinHostPort takes, for its errors.
const hostForms = "want HOST or HOST:PORT, HOST a host name (host.example.com), an IPv4 address (10.0.0.1) or an IPv6 address in brackets ([fd00::1])"

// joinHostPort checks "host:port", or a bare host (then defaultPort), and
// returns it as "host:port" in the form net.JoinHostPort writes; its
// errors do not repeat s. The host is a host name (letters, digits, '-'
// and '_' in dot-separated labels, the last not all digits), an IPv4
// address, or an IPv6 address (a zone allowed) in brackets; bareIPv6 also
// takes one without brackets when no port is given ("fd00::1"). The port
// is a number from 1 to 65535.
func joinHostPort(s, defaultPort string, bareIPv6 bool) (string, error) {
	host, port, err := net.SplitHostPort(s)
	bracketed := strings.HasPrefix(s, "[")
	if err != nil {
		host, port = s, defaultPort
		switch {
		case bracketed:
			if !strings.HasSuffix(s, "]") {
				return "", errors.New(hostForms)
			}
			host = s[1 : len(s)-1]
		case strings.Contains(s, ":") && !(bareIPv6 && isIPv6(s)):
			return "", errors.New(hostForms)
		case strings.Contains(s, ":"):
			bracketed = true // a bare IPv6 address
		}
	}
	switch {
	case host == "":
		return "", errors.New("no host; " + hostForms)
	case bracketed && !isIPv6(host):
		return "", fmt.Errorf("%q in brackets is no IPv6 address; %s", host, hostForms)
	case !bracketed && !isIPv4(host) && !isHostName(host):
		return "", fmt.Errorf("bad host %q; %s", host, hostForms)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	return net.JoinHostPort(host, port), nil
}

// isIPv4 reports whether s is an IPv4 address in dotted decimal.
func isIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

// isIPv6 reports whether s is an IPv6 address, with a zone made of
// letters, digits, '.', '-' and '_' if any (fe80::1%eth0).
func isIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return false
	}
	for _, c := range a.Zone() {
		if !isAlnum(c) && c != '.' && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// isHostName reports whether s is a DNS host name: dot-separated labels
// of 1 to 63 letters, digits, '-' (not first or last) and '_', 253
// characters at most, one trailing dot allowed. The last label is not all
// digits: such a name means an IPv4 address, and is not a valid one.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return strings.Trim(labels[len(labels)-1], "0123456789") != ""
}

func isAlnum(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
