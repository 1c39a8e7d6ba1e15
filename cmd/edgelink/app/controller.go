package app

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"

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

func runController(ctx context.Context, c *v1.ControllerConfig) error {
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
	resync, _ := time.ParseDuration(c.ResyncPeriod) // validated
	ctl := &controller.Controller{Kube: kube, Dynamic: dyn, Resync: resync, Config: controller.Config{
		Cloud: v1.MustPrefixes(c.MeshCIDRConfig.CloudCIDR), Edge: v1.MustPrefixes(c.MeshCIDRConfig.EdgeCIDR),
		EdgeLabel: c.EdgeNodeLabel, Bits4: c.BlockSize, Bits6: c.BlockSizeIPv6, MinFree: c.MinFree,
	}}
	if en := c.Enrollment; en.Enable {
		ns, name, _ := strings.Cut(en.AgentServiceAccount, "/")   // validated
		lifetime, _ := time.ParseDuration(en.CertificateLifetime) // validated
		ke := en.KubeEdgeCASecret
		if ke == "-" {
			ke = ""
		}
		ctl.Signer = &controller.Signer{Kube: kube, Namespace: en.Namespace, CASecret: en.CASecret, CAConfigMap: en.CAConfigMap,
			AgentUser: "system:serviceaccount:" + ns + ":" + name, Lifetime: lifetime, KubeEdgeCASecret: ke, Resync: resync}
	}
	if !c.LeaderElection.Enable {
		return ctl.Run(ctx)
	}
	le := c.LeaderElection
	d := func(s string) time.Duration { v, _ := time.ParseDuration(s); return v } // validated
	return controller.RunElected(ctx, ctl, controller.LeaderElection{Namespace: le.Namespace, Name: le.Name,
		LeaseDuration: d(le.LeaseDuration), RenewDeadline: d(le.RenewDeadline), RetryPeriod: d(le.RetryPeriod)})
}
