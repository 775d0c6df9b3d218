package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/flashpath/flashpath/internal/units"
	"github.com/flashpath/flashpath/spdk"
)

func init() { register(newRPCCmd) }

func newRPCCmd() *cobra.Command {
	var socket string
	var timeout units.Duration
	cmd := &cobra.Command{
		Use:   "rpc METHOD [JSON-PARAMS]",
		Short: "Call the target's SPDK JSON-RPC (what rpc.py -s SOCKET METHOD does)",
		Long: `Send one SPDK JSON-RPC request to a running flashpath target and print
the result. The parameters are SPDK's, as one JSON object; the methods
are listed by "flashpath rpc rpc_get_methods" and complete in the shell.
save_config and load_config are rpc.py's: the running configuration as
SPDK's JSON config (which flashpath target --config and nvmf_tgt --json
read), and that file replayed from stdin.`,
		Example: `  flashpath rpc nvmf_get_subsystems
  flashpath rpc bdev_malloc_create '{"name": "Malloc0", "num_blocks": 131072, "block_size": 512}'
  flashpath rpc nvmf_subsystem_add_ns '{"nqn": "nqn.2016-06.io.spdk:cnode1", "namespace": {"bdev_name": "Malloc0"}}'
  flashpath rpc save_config > saved.json      # then: flashpath target --config saved.json
  flashpath rpc load_config < saved.json`,
		Args:      cobra.RangeArgs(1, 2),
		ValidArgs: append(spdk.MethodNames(), "save_config", "load_config"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var params json.RawMessage
			if len(args) == 2 {
				params = json.RawMessage(args[1])
			}
			ctx, cancel := cmd.Context(), context.CancelFunc(func() {})
			if timeout != units.Forever {
				ctx, cancel = context.WithTimeout(ctx, timeout.Duration())
			}
			defer cancel()
			var res json.RawMessage
			var err error
			switch args[0] {
			case "save_config":
				res, err = rpcSaveConfig(ctx, socket, params)
			case "load_config":
				return rpcLoadConfig(ctx, cmd.InOrStdin(), socket, params)
			default:
				res, err = spdk.Call(ctx, socket, args[0], params)
			}
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
	durationVarP(cmd.Flags(), &timeout, "timeout", "t", 60*time.Second, "how long to wait for the answer: seconds as rpc.py -t takes them (60), or 60s, 2m; -1 waits forever")
	return cmd
}

// rpcSaveConfig is rpc.py save_config: the running configuration as SPDK's
// JSON config.
func rpcSaveConfig(ctx context.Context, socket string, params json.RawMessage) (json.RawMessage, error) {
	if params != nil {
		return nil, fmt.Errorf("save_config takes no parameters: flashpath rpc save_config > saved.json")
	}
	c, err := spdk.SaveConfig(ctx, socket)
	if err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// rpcLoadConfig is rpc.py load_config: SPDK's JSON config from stdin,
// replayed against the target.
func rpcLoadConfig(ctx context.Context, in io.Reader, socket string, params json.RawMessage) error {
	if params != nil {
		return fmt.Errorf("load_config reads the configuration from stdin: flashpath rpc load_config < saved.json")
	}
	b, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("load_config: reading stdin: %w", err)
	}
	c, err := spdk.ParseConfig(b)
	if err != nil {
		return err
	}
	return spdk.LoadConfigAt(ctx, socket, c)
}
