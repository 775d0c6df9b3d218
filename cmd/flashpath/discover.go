package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/nvmeof"
)

func init() { register(newDiscoverCmd) }

type hostFlags struct {
	hostNQN string
	hostID  string
	hdgst   bool
	ddgst   bool
	dhchap  string
	dhctrl  string
	tls     bool
	tlsKey  string
}

func (h *hostFlags) add(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&h.hostNQN, "hostnqn", "", "host NQN (default: /etc/nvme/hostnqn or one derived from the machine ID)")
	fl.StringVar(&h.hostID, "hostid", "", "host identifier UUID (default: /etc/nvme/hostid or the UUID of the host NQN)")
	fl.BoolVar(&h.hdgst, "hdr-digest", false, "enable NVMe/TCP header digests")
	fl.BoolVar(&h.ddgst, "data-digest", false, "enable NVMe/TCP data digests")
	fl.StringVar(&h.dhchap, "dhchap-secret", "", "the host's DH-HMAC-CHAP secret (DHHC-1:XX:...:, from nvme gen-dhchap-key), for targets that require authentication; or @FILE to read it from a file")
	fl.StringVar(&h.dhctrl, "dhchap-ctrl-secret", "", "the controller's DH-HMAC-CHAP secret: the target must prove it holds it (bidirectional authentication); or @FILE")
	fl.BoolVar(&h.tls, "tls", false, "secure NVMe/TCP connections with TLS 1.3 (needs --tls-key)")
	fl.StringVar(&h.tlsKey, "tls-key", "", "the host's TLS PSK (NVMeTLSkey-1:XX:...:, from nvme gen-tls-key), as the target holds it for this host; implies --tls; or @FILE")
}

// secretArg is a secret given on the command line, or @FILE.
func secretArg(flag, v string) (string, error) {
	file, ok := strings.CutPrefix(v, "@")
	if !ok {
		return v, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (h *hostFlags) options() (initiator.Options, error) {
	o := initiator.Options{HostNQN: h.hostNQN, HeaderDigest: h.hdgst, DataDigest: h.ddgst,
		Logger: slog.New(slog.DiscardHandler)}
	var err error
	if o.DHCHAPSecret, err = secretArg("dhchap-secret", h.dhchap); err != nil {
		return o, err
	}
	if o.DHCHAPCtrlSecret, err = secretArg("dhchap-ctrl-secret", h.dhctrl); err != nil {
		return o, err
	}
	if o.TLSKey, err = secretArg("tls-key", h.tlsKey); err != nil {
		return o, err
	}
	if h.tls && o.TLSKey == "" {
		return o, fmt.Errorf("--tls: give the host's PSK with --tls-key (flashpath's host does not read the kernel keyring; nvme gen-tls-key prints a key)")
	}
	if h.hostID != "" {
		id, err := initiator.ParseHostID(h.hostID)
		if err != nil {
			return o, fmt.Errorf("--hostid: %w", err)
		}
		o.HostID = id
	}
	return o, nil
}

func newDiscoverCmd() *cobra.Command {
	var h hostFlags
	var output string
	cmd := &cobra.Command{
		Use:   "discover tcp://HOST[:PORT] | rdma://HOST[:PORT]",
		Short: "Read the discovery log of an NVMe/TCP or NVMe/RDMA discovery controller (like nvme discover; port 8009 by default over TCP)",
		Example: `  flashpath discover tcp://127.0.0.1            # the discovery port, 8009
  flashpath discover tcp://127.0.0.1:4420       # a target's I/O port serves discovery too
  flashpath discover tcp://10.0.0.5 --output json
  flashpath discover rdma://192.168.1.10:4420`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "normal" && output != "json" {
				return fmt.Errorf("--output %q: want normal or json", output)
			}
			opts, err := h.options()
			if err != nil {
				return err
			}
			log, err := initiator.Discover(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			if output == "json" {
				return printDiscoveryJSON(cmd.OutOrStdout(), log)
			}
			printDiscovery(cmd.OutOrStdout(), log)
			return nil
		},
	}
	h.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "normal", "output format: normal or json")
	return cmd
}

func printDiscovery(w io.Writer, log nvmeof.DiscoveryLog) {
	fmt.Fprintf(w, "\nDiscovery Log Number of Records %d, Generation counter %d\n", log.NumRec, log.GenCtr)
	for i, e := range log.Entries {
		fmt.Fprintf(w, "=====Discovery Log Entry %d======\n", i)
		fmt.Fprintf(w, "trtype:  %s\n", nvmeof.TrType(e.TrType))
		fmt.Fprintf(w, "adrfam:  %s\n", nvmeof.AdrFam(e.AdrFam))
		fmt.Fprintf(w, "subtype: %s\n", nvmeof.SubType(e.SubType))
		fmt.Fprintf(w, "treq:    %s\n", nvmeof.TReq(e.TReq))
		fmt.Fprintf(w, "portid:  %d\n", e.PortID)
		fmt.Fprintf(w, "trsvcid: %s\n", e.TrSvcID)
		fmt.Fprintf(w, "subnqn:  %s\n", e.SubNQN)
		fmt.Fprintf(w, "traddr:  %s\n", e.TrAddr)
		fmt.Fprintf(w, "eflags:  %s\n", nvmeof.EFlags(e.EFlags))
		switch e.TrType {
		case nvmeof.TrTypeTCP:
			fmt.Fprintf(w, "sectype: %s\n", nvmeof.SecType(e.SecType))
		case nvmeof.TrTypeRDMA:
			// As nvme-cli prints them.
			fmt.Fprintf(w, "rdma_prtype: %s\n", nvmeof.RDMAPrType(e.RDMAPrType))
			fmt.Fprintf(w, "rdma_qptype: %s\n", nvmeof.RDMAQPType(e.RDMAQPType))
			fmt.Fprintf(w, "rdma_cms:    %s\n", nvmeof.RDMACMS(e.RDMACMS))
			fmt.Fprintf(w, "rdma_pkey: 0x%04x\n", e.RDMAPKey)
		}
	}
}

type discoveryRecordJSON struct {
	TrType  string `json:"trtype"`
	AdrFam  string `json:"adrfam"`
	SubType string `json:"subtype"`
	TReq    string `json:"treq"`
	PortID  uint16 `json:"portid"`
	TrSvcID string `json:"trsvcid"`
	SubNQN  string `json:"subnqn"`
	TrAddr  string `json:"traddr"`
	EFlags  string `json:"eflags"`
	SecType string `json:"sectype,omitempty"`
	// RDMA entries, named as nvme-cli's JSON names them.
	RDMAPrType string `json:"rdma_prtype,omitempty"`
	RDMAQPType string `json:"rdma_qptype,omitempty"`
	RDMACMS    string `json:"rdma_cms,omitempty"`
	RDMAPKey   string `json:"rdma_pkey,omitempty"`
}

func printDiscoveryJSON(w io.Writer, log nvmeof.DiscoveryLog) error {
	out := struct {
		GenCtr  uint64                `json:"genctr"`
		Records []discoveryRecordJSON `json:"records"`
	}{GenCtr: log.GenCtr, Records: []discoveryRecordJSON{}}
	for _, e := range log.Entries {
		r := discoveryRecordJSON{TrType: nvmeof.TrType(e.TrType).String(), AdrFam: nvmeof.AdrFam(e.AdrFam).String(), SubType: nvmeof.SubType(e.SubType).String(),
			TReq: nvmeof.TReq(e.TReq).String(), PortID: e.PortID, TrSvcID: e.TrSvcID, SubNQN: e.SubNQN, TrAddr: e.TrAddr,
			EFlags: nvmeof.EFlags(e.EFlags).String()}
		switch e.TrType {
		case nvmeof.TrTypeTCP:
			r.SecType = nvmeof.SecType(e.SecType).String()
		case nvmeof.TrTypeRDMA:
			r.RDMAPrType, r.RDMAQPType, r.RDMACMS = nvmeof.RDMAPrType(e.RDMAPrType).String(), nvmeof.RDMAQPType(e.RDMAQPType).String(), nvmeof.RDMACMS(e.RDMACMS).String()
			r.RDMAPKey = fmt.Sprintf("0x%04x", e.RDMAPKey)
		}
		out.Records = append(out.Records, r)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
