package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() { register(newManCmd) }

// newManCmd writes the man pages the Debian package ships (make deb):
// one page per command, from the same help text as --help. Hidden: it is
// a build step, not something a user runs.
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write a man page (section 1) for every command into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			// No "Auto generated" footer: the date comes from
			// SOURCE_DATE_EPOCH (the commit's), for a reproducible package.
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Source: "flashpath " + version, Manual: "flashpath manual"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
}
