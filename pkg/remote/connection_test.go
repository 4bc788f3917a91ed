package remote

import (
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
)

func TestClassify(t *testing.T) {
	gr := schema.GroupResource{Group: "multicluster.admiralty.io", Resource: "clustersummaries"}
	// What client-go makes of a plain-text 404 (the path is not served).
	noResource := apierrors.NewGenericServerResponse(404, "get", gr, protocol.ClusterSummaryName, "404 page not found", 0, true)
	cases := []struct {
		name        string
		err         error
		wantReady   bool
		wantReason  string
		wantMessage string
	}{
		{"answers", nil, true, multiclusterv1alpha1.ReasonConnected, "connected to https://t:6443"},
		{"summary not written yet", apierrors.NewNotFound(gr, protocol.ClusterSummaryName), true, multiclusterv1alpha1.ReasonConnected, "has not published its ClusterSummary yet"},
		{"API not served", noResource, false, multiclusterv1alpha1.ReasonNotInstalled, "install Flotilla in the target cluster"},
		{"bad token", apierrors.NewUnauthorized("Unauthorized"), false, multiclusterv1alpha1.ReasonUnauthorized, "invalid or expired"},
		{"no permission", apierrors.NewForbidden(gr, protocol.ClusterSummaryName, errors.New("RBAC: denied")), false, multiclusterv1alpha1.ReasonForbidden, "create a Source (or ClusterSource)"},
		{"connection refused", &url.Error{Op: "Get", URL: "https://t:6443", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, false, multiclusterv1alpha1.ReasonUnreachable, "cannot reach https://t:6443: Get"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := classify(tc.err, "https://t:6443")
			if h.Ready != tc.wantReady || h.Reason != tc.wantReason || !strings.Contains(h.Message, tc.wantMessage) {
				t.Errorf("classify(%v) = %+v, want ready=%t reason=%s message containing %q", tc.err, h, tc.wantReady, tc.wantReason, tc.wantMessage)
			}
		})
	}
}
