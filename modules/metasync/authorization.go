package metasync

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// explain turns a refusal by a metaServer with EdgeCore's
// requireAuthorization into what to fix: client-go says only
// "Unauthorized" or "forbidden", which names neither the metaServer nor
// the token file.
func (s *Service) explain(err error) string {
	token := "modules.metaSync.tokenFile " + s.TokenFile
	switch {
	case apierrors.IsUnauthorized(err) && s.TokenFile == "":
		return fmt.Sprintf("%v: the metaServer %s wants a bearer token (EdgeCore's requireAuthorization is on): set modules.metaSync.tokenFile to a ServiceAccount token file (and an https:// metaServer with its caFile)", err, s.server())
	case apierrors.IsUnauthorized(err):
		return fmt.Sprintf("%v: the metaServer %s rejected the token in %s: not a ServiceAccount token of this cluster, expired, or its ServiceAccount is gone (EdgeCore checks it against modules.metaManager.metaServer.serviceAccountKeyFiles, serviceAccountIssuers and apiAudiences)", err, s.server(), token)
	case apierrors.IsForbidden(err):
		return fmt.Sprintf("%v: the metaServer %s accepted the token in %s, but RBAC does not let its ServiceAccount do this: bind it to a ClusterRole with get, list and watch on pods, nodes, namespaces and spiderpool.spidernet.io spiderippools", err, s.server(), token)
	case s.TokenFile != "":
		return fmt.Sprintf("%v (metaServer %s, %s)", err, s.server(), token)
	}
	return err.Error()
}
