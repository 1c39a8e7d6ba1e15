package app

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/controller"
	"github.com/edgelink/edgelink/pkg/version"
)

func newControllerCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the cluster's controller (in the cloud, once per cluster) until SIGTERM or SIGINT",
		Long: `The controller splits shared SpiderIPPools (several nodes, nodeAffinity, or none)
into per-node blocks for edge nodes, so they allocate offline without ever sharing an
address, and, with enrollment.enable, signs cloud nodes' member certificates through
the CertificateSigningRequest API (signer edgelink.io/member). It talks only to the
kube-apiserver; with leaderElection.enable several replicas elect one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("--config is required (see docs/config-reference.md, EdgeLinkController)")
			}
			c, err := v1.LoadController(configPath)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			klog.InfoS("Starting edgelink controller", "version", version.String(), "config", configPath)
			return runController(ctx, c)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "controller config file (YAML, kind EdgeLinkController)")
	return cmd
}

func runController(ctx context.Context, c *v1.Controller) error {
	var rc *rest.Config
	var err error
	if c.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return fmt.Errorf("kube-apiserver (kubeconfig %q): %w", c.Kubeconfig, err)
	}
	rc.UserAgent = "edgelink-controller/" + version.Version
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	p := c.Parsed
	ctl := &controller.Controller{Kube: kube, Dynamic: dyn, Resync: p.ResyncPeriod, Config: controller.Config{
		Cloud: p.CloudCIDR, Edge: p.EdgeCIDR,
		EdgeLabel: c.EdgeNodeLabel, Bits4: c.BlockSize, Bits6: c.BlockSizeIPv6, MinFree: c.MinFree,
	}}
	if en := c.Enrollment; en.Enable {
		sa := p.AgentServiceAccount
		ctl.Signer = &controller.Signer{Kube: kube, Namespace: en.Namespace, CASecret: en.CASecret, CAConfigMap: en.CAConfigMap,
			AgentUser: "system:serviceaccount:" + sa.Namespace + ":" + sa.Name, Lifetime: p.CertificateLifetime,
			KubeEdgeCASecret: p.KubeEdgeCASecret, Resync: p.ResyncPeriod}
	}
	if !c.LeaderElection.Enable {
		return ctl.Run(ctx)
	}
	le := c.LeaderElection
	return controller.RunElected(ctx, ctl, controller.LeaderElection{Namespace: le.Namespace, Name: le.Name,
		LeaseDuration: p.LeaseDuration, RenewDeadline: p.RenewDeadline, RetryPeriod: p.RetryPeriod})
}
