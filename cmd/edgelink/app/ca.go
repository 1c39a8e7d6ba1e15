package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/pkg/p2p"
)

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "Manage EdgeLink's cluster CA (mesh membership certificates)"}
	var dir, name string
	var validity time.Duration
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create a cluster CA (ca.crt, ca.key) in --dir; never overwrites one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := membership.InitCA(dir, name, validity)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created CA %q in %s (valid until %s); keep %s/%s secret\n",
				name, dir, ca.Cert.NotAfter.UTC().Format(time.RFC3339), dir, membership.CAKeyFile)
			return nil
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "directory for ca.crt and ca.key (required)")
	initCmd.Flags().StringVar(&name, "name", "edgelink-cluster-ca", "CA common name")
	initCmd.Flags().DurationVar(&validity, "validity", 10*365*24*time.Hour, "CA lifetime")
	_ = initCmd.MarkFlagRequired("dir")

	var node, peerID, identity, out string
	var memberValidity time.Duration
	issueCmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a member certificate binding --node to a libp2p peer ID",
		Long: `Issues <out>/<node>.crt and <out>/<node>.key, signed by the CA in --dir,
naming the node and bound to its peer ID (take it from --peer-id, or from the
node's identity key with --identity; print it on the node with
"edgelink identity --key FILE").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var id peer.ID
			switch {
			case peerID != "" && identity != "":
				return errors.New("give --peer-id or --identity, not both")
			case peerID != "":
				var err error
				if id, err = peer.Decode(peerID); err != nil {
					return fmt.Errorf("--peer-id %q: %w", peerID, err)
				}
			case identity != "":
				var err error
				if _, id, err = p2p.LoadOrCreateIdentity(identity); err != nil {
					return err
				}
			default:
				return errors.New("--peer-id or --identity is required")
			}
			ca, err := membership.LoadCA(dir)
			if err != nil {
				return err
			}
			crt, key, err := ca.Issue(node, id, memberValidity, out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "issued %s and %s for node %s, peer %s\n", crt, key, node, id)
			return nil
		},
	}
	issueCmd.Flags().StringVar(&dir, "dir", "", "CA directory (required)")
	issueCmd.Flags().StringVar(&node, "node", "", "node name (required)")
	issueCmd.Flags().StringVar(&peerID, "peer-id", "", "the node's libp2p peer ID")
	issueCmd.Flags().StringVar(&identity, "identity", "", "the node's identity key file (alternative to --peer-id)")
	issueCmd.Flags().StringVar(&out, "out", ".", "output directory")
	issueCmd.Flags().DurationVar(&memberValidity, "validity", 365*24*time.Hour, "certificate lifetime")
	_ = issueCmd.MarkFlagRequired("dir")
	_ = issueCmd.MarkFlagRequired("node")
	cmd.AddCommand(initCmd, issueCmd)
	return cmd
}

func newIdentityCmd() *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Print this node's libp2p peer ID (creating the key on first use)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, id, err := p2p.LoadOrCreateIdentity(key)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "/var/lib/edgelink/tunnel/identity.key", "identity key file")
	return cmd
}
