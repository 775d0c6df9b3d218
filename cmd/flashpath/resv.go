package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flashpath/flashpath/nvmeof"
)

// The reservation commands, with nvme-cli's names and flags (nvme
// resv-register, resv-acquire, resv-release, resv-report): this host is
// named by its Host Identifier (--hostid).

func newResvRegisterCmd(f *ioFlags) *cobra.Command {
	var crkey, nrkey uint64
	var rrega, cptpl uint8
	var iekey bool
	cmd := &cobra.Command{
		Use:   "resv-register",
		Short: "Register this host's reservation key on the namespace, unregister it or replace it (nvme resv-register)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rrega > nvmeof.ResvReplace {
				return fmt.Errorf("--rrega %d: want 0 (register), 1 (unregister) or 2 (replace)", rrega)
			}
			if cptpl == 1 || cptpl > 3 {
				return fmt.Errorf("--cptpl %d: want 0 (no change), 2 (registrations do not survive a restart of the target) or 3 (they do: the namespace needs a ptpl_file)", cptpl)
			}
			c, ns, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return ns.ResvRegister(cmd.Context(), rrega, iekey, cptpl, crkey, nrkey)
		},
	}
	fl := cmd.Flags()
	fl.Uint64VarP(&crkey, "crkey", "c", 0, "current reservation key (unregister, replace)")
	fl.Uint64VarP(&nrkey, "nrkey", "k", 0, "new reservation key (register, replace)")
	fl.Uint8VarP(&rrega, "rrega", "r", 0, "action: 0 register, 1 unregister, 2 replace")
	fl.BoolVarP(&iekey, "iekey", "i", false, "ignore the current key (unregister, replace)")
	fl.Uint8VarP(&cptpl, "cptpl", "p", 0, "persistence through power loss: 0 no change, 2 off, 3 on (the namespace needs a ptpl_file)")
	return cmd
}

func newResvAcquireCmd(f *ioFlags) *cobra.Command {
	var crkey, prkey uint64
	var rtype, racqa uint8
	cmd := &cobra.Command{
		Use:   "resv-acquire",
		Short: "Acquire a reservation on the namespace, or preempt other hosts' (nvme resv-acquire)",
		Long: `Acquire a reservation of type --rtype (1 write exclusive, 2 exclusive access,
3 and 4 the same for registrants only, 5 and 6 for all registrants) as the
host registered with --crkey; or preempt the hosts registered with --prkey
(--racqa 1), taking their reservation over when they hold it. With --racqa 2
(preempt and abort) the command returns only once their commands already on
the target have run: a write of theirs cannot land after it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rtype < nvmeof.ResvWriteExclusive || rtype > nvmeof.ResvExclusiveAccessAllRegs {
				return fmt.Errorf("--rtype %d: want 1 to 6", rtype)
			}
			if racqa > nvmeof.ResvPreemptAndAbort {
				return fmt.Errorf("--racqa %d: want 0 (acquire), 1 (preempt) or 2 (preempt and abort)", racqa)
			}
			c, ns, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return ns.ResvAcquire(cmd.Context(), racqa, rtype, crkey, prkey)
		},
	}
	fl := cmd.Flags()
	fl.Uint64VarP(&crkey, "crkey", "c", 0, "this host's reservation key")
	fl.Uint64VarP(&prkey, "prkey", "p", 0, "key of the registrants to preempt")
	fl.Uint8VarP(&rtype, "rtype", "t", 0, "reservation type, 1 to 6")
	fl.Uint8VarP(&racqa, "racqa", "a", 0, "action: 0 acquire, 1 preempt, 2 preempt and abort")
	return cmd
}

func newResvReleaseCmd(f *ioFlags) *cobra.Command {
	var crkey uint64
	var rtype, rrela uint8
	cmd := &cobra.Command{
		Use:   "resv-release",
		Short: "Release this host's reservation, or clear every registration (nvme resv-release)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rrela > nvmeof.ResvClear {
				return fmt.Errorf("--rrela %d: want 0 (release) or 1 (clear)", rrela)
			}
			c, ns, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return ns.ResvRelease(cmd.Context(), rrela, rtype, crkey)
		},
	}
	fl := cmd.Flags()
	fl.Uint64VarP(&crkey, "crkey", "c", 0, "this host's reservation key")
	fl.Uint8VarP(&rtype, "rtype", "t", 0, "type of the reservation held (release)")
	fl.Uint8VarP(&rrela, "rrela", "a", 0, "action: 0 release, 1 clear")
	return cmd
}

type resvJSON struct {
	Gen         uint32        `json:"gen"`
	RType       uint8         `json:"rtype"`
	Type        string        `json:"type"`
	PTPLS       uint8         `json:"ptpls"`
	Registrants []resvRegJSON `json:"registrants"`
}

type resvRegJSON struct {
	HostID string `json:"hostid"`
	Key    uint64 `json:"rkey"`
	Holds  bool   `json:"holds"`
}

func newResvReportCmd(f *ioFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "resv-report",
		Short: "Print the namespace's registrants and reservation (nvme resv-report --eds)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "normal" && output != "json" {
				return fmt.Errorf("--output %q: want normal or json", output)
			}
			c, ns, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			rep, err := ns.ResvReport(cmd.Context())
			if err != nil {
				return err
			}
			j := resvJSON{Gen: rep.Gen, RType: rep.Type, Type: nvmeof.ResvTypeName(rep.Type), Registrants: []resvRegJSON{}}
			if rep.PTPLS {
				j.PTPLS = 1
			}
			for _, g := range rep.List {
				j.Registrants = append(j.Registrants, resvRegJSON{HostID: hex.EncodeToString(g.HostID[:]), Key: g.Key, Holds: g.Holds})
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(j)
			}
			ptpl := "off"
			if rep.PTPLS {
				ptpl = "on"
			}
			fmt.Fprintf(w, "%s namespace %d: generation %d, reservation: %s, persist through power loss: %s\n", f.nqn, ns.ID(), j.Gen, j.Type, ptpl)
			for _, g := range j.Registrants {
				fmt.Fprintf(w, " +- host %s key %#x", g.HostID, g.Key)
				if g.Holds {
					fmt.Fprint(w, " (holds)")
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "normal", "output format: normal or json")
	return cmd
}
