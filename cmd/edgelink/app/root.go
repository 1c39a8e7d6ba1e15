// Package app holds edgelink's subcommands; main only calls Main.
package app

import (
	"flag"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
)

// Main runs the edgelink command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "edgelink:", err)
		klog.Flush()
		return 1
	}
	klog.Flush()
	return 0
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "edgelink",
		Short:         "EdgeLink: a pod network across KubeEdge's cloud and edge segments",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	root.PersistentFlags().AddGoFlagSet(klogFlags)

	root.AddCommand(newAgentCmd(), newControllerCmd(), newConfigCmd(), newCNICmd(), newCACmd(), newIdentityCmd(), newInstallCmd(), newVersionCmd())
	root.AddCommand(opsCommands()...) // status, ping, routes, diagnose (ops.go)
	return root
}
