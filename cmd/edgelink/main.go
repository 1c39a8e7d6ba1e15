// Command edgelink is EdgeLink's agent and command-line tool.
//
//	edgelink agent --config FILE      run the agent's beehive modules
//	edgelink config default|validate  print or check an agent config
//	edgelink cni install              install edgelink-cni and its conflist
//	edgelink version
package main

import (
	"os"

	"github.com/edgelink/edgelink/cmd/edgelink/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr))
}
