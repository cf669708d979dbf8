package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nanokube/nanokube/internal/apiserver"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			info := apiserver.Info()
			fmt.Fprintf(cmd.OutOrStdout(), "nanokube %s (Kubernetes API %s, %s)\n", info.GitVersion, apiserver.Version, info.GoVersion)
		},
	}
}
