package app

import (
	"fmt"

	"github.com/spf13/cobra"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Print or check an agent config file"}
	cmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the default agent config",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := v1.Marshal(v1.NewDefault())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "validate FILE",
		Short: "Check an agent config file and report every problem",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := loadConfig(cmd, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", args[0])
			return nil
		},
	})
	return cmd
}

// loadConfig loads and validates a config file, printing warnings, and
// returns it parsed.
func loadConfig(cmd *cobra.Command, path string) (*v1.Agent, error) {
	c, warnings, err := v1.Load(path)
	for _, w := range warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
	}
	return c, err
}
