package framework

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// InstallCRDs applies Flotilla's generated CRDs (config/crd/bases) to the
// cluster with server-side apply, and waits until they are established.
func (c *Cluster) InstallCRDs(ctx context.Context) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "config", "crd", "bases")
	out, err := c.Kubectl(ctx, "apply", "--server-side", "--force-conflicts", "--field-manager=flotilla-e2e", "-f", dir, "-o", "name")
	if err != nil {
		return fmt.Errorf("applying CRDs: %w", err)
	}
	names := strings.Fields(out)
	ctx, cancel := context.WithTimeout(ctx, ShortTimeout)
	defer cancel()
	return waitFor(ctx, "CRDs established", nil, func(ctx context.Context) error {
		for _, n := range names {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := c.Client.Get(ctx, client.ObjectKey{Name: strings.TrimPrefix(n, "customresourcedefinition.apiextensions.k8s.io/")}, &crd); err != nil {
				return err
			}
			established := false
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			if !established {
				return fmt.Errorf("CRD %s not established yet: %w", crd.Name, errNotYet)
			}
		}
		return nil
	})
}
