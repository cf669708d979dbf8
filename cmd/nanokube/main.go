// Command nanokube is the single nanokube binary: every component of a Kubernetes cluster as a
// subcommand. This file only assembles the command tree; each component owns its Config and Run.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "nanokube:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "nanokube",
		Short:         "A small Kubernetes-compatible container orchestrator in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newServerCommand(),
		newAgentCommand(),
		newAPIServerCommand(),
		newRuntimeCommand(),
		newKubeletCommand(),
		newSchedulerCommand(),
		newProxyCommand(),
		newControllerManagerCommand(),
		newHollowNodesCommand(),
		newVersionCommand(),
	)
	return root
}
