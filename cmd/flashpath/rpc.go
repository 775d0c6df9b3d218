package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/flashpath/flashpath/spdk"
)

func init() { register(newRPCCmd) }

func newRPCCmd() *cobra.Command {
	var socket string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "rpc METHOD [JSON-PARAMS]",
		Short: "Call the target's SPDK JSON-RPC (what rpc.py -s SOCKET METHOD does)",
		Long: `Send one SPDK JSON-RPC request to a running flashpath target and print
the result. The parameters are SPDK's, as one JSON object; the methods
are listed by "flashpath rpc rpc_get_methods" and complete in the shell.`,
		Example: `  flashpath rpc nvmf_get_subsystems
  flashpath rpc bdev_malloc_create '{"name": "Malloc0", "num_blocks": 131072, "block_size": 512}'
  flashpath rpc nvmf_subsystem_add_ns '{"nqn": "nqn.2016-06.io.spdk:cnode1", "namespace": {"bdev_name": "Malloc0"}}'`,
		Args:      cobra.RangeArgs(1, 2),
		ValidArgs: spdk.MethodNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			var params json.RawMessage
			if len(args) == 2 {
				params = json.RawMessage(args[1])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := spdk.Call(ctx, socket, args[0], params)
			if err != nil {
				return err
			}
			var out bytes.Buffer
			if json.Indent(&out, res, "", "  ") != nil {
				out.Write(res)
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.String())
			return nil
		},
	}
	cmd.Flags().StringVarP(&socket, "socket", "s", spdk.DefaultSocket, "the target's JSON-RPC socket (flashpath target --rpc-socket)")
	cmd.Flags().DurationVarP(&timeout, "timeout", "t", 60*time.Second, "how long to wait for the answer")
	return cmd
}
