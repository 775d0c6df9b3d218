// Command flashpath is the single CLI for the flashpath storage data path:
// the NVMe-oF target, the user-space initiator, the benchmark and the GPU tools.
//
// The command layer is thin: flags become a config struct, the struct is
// validated and handed to a constructor in the library packages.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at link time with -ldflags "-X main.version=...".
var version = "dev"

// subcommands holds constructors registered by the files of this package
// (each feature file calls register from its init), so that adding a
// command never edits this file.
var subcommands []func() *cobra.Command

func register(f func() *cobra.Command) { subcommands = append(subcommands, f) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "flashpath",
		Short:         "flashpath moves bytes from shared flash into GPU memory at line rate",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd())
	for _, f := range subcommands {
		root.AddCommand(f())
	}
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the flashpath version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "flashpath %s\n", fullVersion())
		},
	}
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		if !errors.As(err, new(loggedError)) {
			fmt.Fprintln(os.Stderr, "flashpath:", err)
		}
		os.Exit(1)
	}
}
