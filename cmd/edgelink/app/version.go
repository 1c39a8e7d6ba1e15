package app

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/pkg/version"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "edgelink", version.String())
		},
	}
}
