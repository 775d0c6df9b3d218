package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/units"
	"github.com/flashpath/flashpath/target/backend"
)

func init() { register(newIOCmd) }

type ioFlags struct {
	host           hostFlags
	addr           string
	nqn            string
	nsid           uint32
	reconnectDelay units.Duration
	ctrlLossTmo    units.Duration
}

func (f *ioFlags) config() (initiator.Config, error) {
	if f.addr == "" {
		return initiator.Config{}, errors.New("--addr: required (tcp://HOST:PORT of the target)")
	}
	if f.nqn == "" {
		return initiator.Config{}, errors.New("--nqn: required (the subsystem NQN; `flashpath discover` lists them)")
	}
	opts, err := f.host.options()
	if err != nil {
		return initiator.Config{}, err
	}
	if err := notForever("reconnect-delay", f.reconnectDelay); err != nil {
		return initiator.Config{}, err
	}
	return initiator.Config{Addr: f.addr, SubNQN: f.nqn, Options: opts, IOQueues: 2,
		ReconnectDelay: f.reconnectDelay.Duration(), CtrlLossTimeout: initiator.CtrlLossFromNVMeCLI(f.ctrlLossTmo.Duration())}, nil
}

// blockNS is a namespace through one path or several.
type blockNS interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Flush() error
	Size() int64
	BlockSize() int
	Close() error
}

// nsOne is a namespace through one controller, closed with it.
type nsOne struct {
	*initiator.Namespace
	c *initiator.Controller
}

func (n nsOne) Close() error { return n.c.Close() }

// addrs splits --addr into its paths; one without a scheme takes the
// first's (tcp://A:4420,B:4420).
func (f *ioFlags) addrs() []string {
	list := strings.Split(f.addr, ",")
	scheme, _, ok := strings.Cut(list[0], "://")
	for i, a := range list {
		if ok && !strings.Contains(a, "://") {
			list[i] = scheme + "://" + a
		}
	}
	return list
}

// openAny opens the namespace through every path --addr lists: a
// Multipath when there are several.
func (f *ioFlags) openAny(ctx context.Context) (blockNS, error) {
	list := f.addrs()
	if len(list) == 1 {
		c, ns, err := f.open(ctx)
		if err != nil {
			return nil, err
		}
		return nsOne{ns, c}, nil
	}
	return f.openMultipath(ctx, list)
}

func (f *ioFlags) openMultipath(ctx context.Context, list []string) (*initiator.Multipath, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	cfgs := make([]initiator.Config, len(list))
	for i, a := range list {
		cfgs[i] = cfg
		cfgs[i].Addr = a
	}
	return initiator.ConnectMultipath(ctx, cfgs, f.nsid)
}

// open connects and identifies the namespace; the caller closes the controller.
func (f *ioFlags) open(ctx context.Context) (*initiator.Controller, *initiator.Namespace, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, nil, err
	}
	if strings.Contains(cfg.Addr, ",") {
		return nil, nil, fmt.Errorf("--addr %s: several paths; identify and the reservation commands talk to one controller: give one address (reservations are the host's on every path)", cfg.Addr)
	}
	c, err := initiator.Connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	ns, err := c.Namespace(ctx, f.nsid)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, ns, nil
}

func newIOCmd() *cobra.Command {
	var f ioFlags
	cmd := &cobra.Command{
		Use:   "io",
		Short: "Talk to an NVMe/TCP or NVMe/RDMA subsystem with the user-space initiator",
		Example: `  flashpath io --addr tcp://127.0.0.1:4420 --nqn nqn.2026-11.io.flashpath:demo identify
  flashpath io --addr tcp://127.0.0.1:4420 --nqn nqn.2026-11.io.flashpath:demo write --offset 0 --in data.bin
  flashpath io --addr tcp://127.0.0.1:4420 --nqn nqn.2026-11.io.flashpath:demo read --offset 0 --length 4KiB --out copy.bin
  flashpath io --addr tcp://10.0.0.1:4420,10.0.0.2:4420 --nqn nqn.2026-11.io.flashpath:demo paths
  flashpath io --addr tcp://127.0.0.1:4420 --nqn nqn.2026-11.io.flashpath:demo resv-acquire --crkey 0xb --prkey 0xa --rtype 1 --racqa 2`,
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.addr, "addr", "", "target address, tcp://HOST:PORT or rdma://HOST:PORT (port default 4420); several, comma-separated, are paths to one namespace (multipath)")
	fl.StringVar(&f.nqn, "nqn", "", "subsystem NQN")
	fl.Uint32Var(&f.nsid, "nsid", 1, "namespace ID")
	durationVar(fl, &f.reconnectDelay, "reconnect-delay", 2*time.Second, "wait between reconnect attempts after a lost connection (2, 2s, 500ms)")
	durationVar(fl, &f.ctrlLossTmo, "ctrl-loss-tmo", time.Minute, "how long to keep reconnecting (I/O waits meanwhile): 600, 600s, 10m; 0 fails at once, -1 reconnects forever")
	f.host.add(cmd)
	cmd.AddCommand(newIdentifyCmd(&f), newReadCmd(&f), newWriteCmd(&f), newPathsCmd(&f),
		newResvRegisterCmd(&f), newResvAcquireCmd(&f), newResvReleaseCmd(&f), newResvReportCmd(&f))
	return cmd
}

type identifyJSON struct {
	Model      string   `json:"model"`
	Serial     string   `json:"serial"`
	Firmware   string   `json:"firmware"`
	SubNQN     string   `json:"subnqn"`
	CntlID     uint16   `json:"cntlid"`
	Version    string   `json:"version"`
	MaxXfer    int      `json:"max_transfer_bytes"`
	IOQueues   int      `json:"io_queues"`
	QueueDepth int      `json:"queue_depth"`
	Namespaces []uint32 `json:"namespaces"`
	NSID       uint32   `json:"nsid"`
	BlockSize  int      `json:"block_size"`
	Blocks     uint64   `json:"blocks"`
	SizeBytes  int64    `json:"size_bytes"`
}

func newIdentifyCmd(f *ioFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "identify",
		Short: "Print the controller and namespace identity",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "normal" && output != "json" {
				return fmt.Errorf("--output %q: want normal or json", output)
			}
			ctx := cmd.Context()
			c, ns, err := f.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			ids, err := c.ActiveNamespaces(ctx)
			if err != nil {
				return err
			}
			id := c.Identify()
			vs := c.Version()
			out := identifyJSON{Model: id.Model, Serial: id.Serial, Firmware: id.Firmware, SubNQN: id.SubNQN,
				CntlID: c.CntlID(), Version: fmt.Sprintf("%d.%d.%d", vs>>16, vs>>8&0xFF, vs&0xFF),
				MaxXfer: ns.MaxTransfer(), IOQueues: len(c.Queues()), QueueDepth: c.Queues()[0].Depth(),
				Namespaces: ids, NSID: ns.ID(), BlockSize: ns.BlockSize(), Blocks: ns.Info().NSZE, SizeBytes: ns.Size()}
			w := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			fmt.Fprintf(w, "controller\n  model:     %s\n  serial:    %s\n  firmware:  %s\n  subnqn:    %s\n  cntlid:    %d\n  version:   %s\n  mdts:      %d bytes\n  queues:    %d x %d\n  namespaces: %v\n",
				out.Model, out.Serial, out.Firmware, out.SubNQN, out.CntlID, out.Version, out.MaxXfer, out.IOQueues, out.QueueDepth, out.Namespaces)
			fmt.Fprintf(w, "namespace %d\n  block size: %d\n  blocks:     %d\n  size:       %d bytes\n", out.NSID, out.BlockSize, out.Blocks, out.SizeBytes)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "normal", "output format: normal or json")
	return cmd
}

// chunkSize is how much one blocking call moves.
const chunkSize = 4 << 20

func newReadCmd(f *ioFlags) *cobra.Command {
	var offS, lenS, out string
	cmd := &cobra.Command{
		Use:   "read",
		Short: "Read bytes from the namespace to stdout or a file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			off, err := backend.ParseSize(offS)
			if err != nil {
				return fmt.Errorf("--offset: %w", err)
			}
			length, err := backend.ParseSize(lenS)
			if err != nil || length <= 0 {
				return fmt.Errorf("--length %q: want a positive size such as 4096 or 1MiB", lenS)
			}
			ns, err := f.openAny(cmd.Context())
			if err != nil {
				return err
			}
			defer ns.Close()
			if off+length > ns.Size() {
				return fmt.Errorf("--offset %d --length %d: beyond the end of the %d-byte namespace", off, length, ns.Size())
			}
			w := cmd.OutOrStdout()
			if out != "" && out != "-" {
				fh, err := os.Create(out)
				if err != nil {
					return err
				}
				defer fh.Close()
				w = fh
			}
			if err := readRange(ns, w, off, length); err != nil {
				return err
			}
			if fh, ok := w.(*os.File); ok && out != "" && out != "-" {
				return fh.Close()
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&offS, "offset", "0", "byte offset (any; reads whole blocks around it)")
	cmd.Flags().StringVar(&lenS, "length", "", "bytes to read, e.g. 4096 or 1MiB")
	cmd.Flags().StringVar(&out, "out", "", "output file (default stdout)")
	cmd.MarkFlagRequired("length")
	return cmd
}

// readRange copies [off, off+length) to w, reading whole blocks.
func readRange(ns blockNS, w io.Writer, off, length int64) error {
	bs := int64(ns.BlockSize())
	buf := make([]byte, chunkSize)
	for length > 0 {
		start := off / bs * bs
		end := min((off+length+bs-1)/bs*bs, start+chunkSize)
		p := buf[:end-start]
		if _, err := ns.ReadAt(p, start); err != nil {
			return err
		}
		n := min(length, end-off)
		if _, err := w.Write(p[off-start : off-start+n]); err != nil {
			return err
		}
		off += n
		length -= n
	}
	return nil
}

func newWriteCmd(f *ioFlags) *cobra.Command {
	var offS, in string
	var pad bool
	cmd := &cobra.Command{
		Use:   "write",
		Short: "Write stdin or a file to the namespace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			off, err := backend.ParseSize(offS)
			if err != nil {
				return fmt.Errorf("--offset: %w", err)
			}
			r := cmd.InOrStdin()
			if in != "" && in != "-" {
				fh, err := os.Open(in)
				if err != nil {
					return err
				}
				defer fh.Close()
				r = fh
			}
			data, err := io.ReadAll(r)
			if err != nil {
				return fmt.Errorf("read input: %w", err)
			}
			if len(data) == 0 {
				return errors.New("write: no input data")
			}
			ns, err := f.openAny(cmd.Context())
			if err != nil {
				return err
			}
			defer ns.Close()
			bs := ns.BlockSize()
			if off%int64(bs) != 0 {
				return fmt.Errorf("--offset %d: not a multiple of the %d-byte block size", off, bs)
			}
			if rem := len(data) % bs; rem != 0 {
				if !pad {
					return fmt.Errorf("input is %d bytes, not a multiple of the %d-byte block size: pad it, or pass --pad to zero-fill the last block", len(data), bs)
				}
				data = append(data, make([]byte, bs-rem)...)
			}
			if off+int64(len(data)) > ns.Size() {
				return fmt.Errorf("--offset %d with %d bytes: beyond the end of the %d-byte namespace", off, len(data), ns.Size())
			}
			if _, err := ns.WriteAt(data, off); err != nil {
				return err
			}
			if err := ns.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d bytes at %d\n", len(data), off)
			return nil
		},
	}
	cmd.Flags().StringVar(&offS, "offset", "0", "byte offset, a multiple of the block size")
	cmd.Flags().StringVar(&in, "in", "", "input file (default stdin)")
	cmd.Flags().BoolVar(&pad, "pad", false, "zero-fill the input up to a whole block")
	return cmd
}

type pathJSON struct {
	Addr      string `json:"addr"`
	State     string `json:"state"` // live, connecting, gone
	ANAState  string `json:"ana_state"`
	CntlID    uint16 `json:"cntlid,omitempty"`
	Usable    bool   `json:"usable"`
	LostError string `json:"error,omitempty"`
}

// newPathsCmd prints each path to the namespace, as `nvme list-subsys`
// does for the kernel host's multipath.
func newPathsCmd(f *ioFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "paths",
		Short: "Connect every path --addr lists and print each one's state (connection, ANA)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "normal" && output != "json" {
				return fmt.Errorf("--output %q: want normal or json", output)
			}
			m, err := f.openMultipath(cmd.Context(), f.addrs())
			if err != nil {
				return err
			}
			defer m.Close()
			var paths []pathJSON
			for i, in := range m.States() {
				p := pathJSON{Addr: in.Addr, State: in.State(), ANAState: in.ANA.String(), Usable: in.Usable()}
				switch {
				case in.Gone != nil:
					p.LostError = in.Gone.Error()
				case in.Connected:
					p.CntlID = m.Paths()[i].Controller().CntlID()
				}
				paths = append(paths, p)
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					SubNQN    string     `json:"subnqn"`
					NSID      uint32     `json:"nsid"`
					SizeBytes int64      `json:"size_bytes"`
					Paths     []pathJSON `json:"paths"`
				}{f.nqn, m.ID(), m.Size(), paths})
			}
			fmt.Fprintf(w, "%s namespace %d (%d bytes)\n", f.nqn, m.ID(), m.Size())
			for _, p := range paths {
				fmt.Fprintf(w, " +- %s %s %s", p.Addr, p.State, p.ANAState)
				if p.CntlID != 0 {
					fmt.Fprintf(w, " cntlid %d", p.CntlID)
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "normal", "output format: normal or json")
	return cmd
}
