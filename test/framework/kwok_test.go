package framework

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The rendered kwok configuration is valid YAML holding the stages and
// kubelet-endpoint objects, without a KwokConfiguration (kwok would then skip
// its defaults), and every stage's status template survived rendering.
func TestKwokConfigRenders(t *testing.T) {
	var buf bytes.Buffer
	err := kwokTemplate.Execute(&buf, map[string]string{"LogsFile": "/x/container.log", "WorkDir": "/x", "Cluster": "target-1"})
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(&buf, 4096)
	var got []string
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decoding: %v", err)
		}
		if obj.Object == nil {
			continue
		}
		got = append(got, obj.GetKind()+"/"+obj.GetName())
		if obj.GetAPIVersion() != "kwok.x-k8s.io/v1alpha1" {
			t.Errorf("%s/%s: apiVersion %q", obj.GetKind(), obj.GetName(), obj.GetAPIVersion())
		}
		if obj.GetKind() == "Stage" {
			tmpl, _, _ := unstructured.NestedString(obj.Object, "spec", "next", "statusTemplate")
			if obj.GetName() != "pod-delete" && !strings.Contains(tmpl, "{{ $now := Now }}") {
				t.Errorf("stage %s: status template lost its kwok template actions:\n%s", obj.GetName(), tmpl)
			}
		}
		if obj.GetKind() == "ClusterLogs" {
			logs, _, _ := unstructured.NestedSlice(obj.Object, "spec", "logs")
			if len(logs) != 1 || logs[0].(map[string]any)["logsFile"] != "/x/container.log" {
				t.Errorf("ClusterLogs logs = %v", logs)
			}
		}
	}
	want := []string{
		"Stage/node-initialize", "Stage/node-heartbeat", "Stage/pod-running", "Stage/pod-complete", "Stage/pod-delete",
		"ClusterLogs/sandbox", "ClusterAttach/sandbox", "ClusterExec/sandbox", "ClusterPortForward/sandbox",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kwok config objects (-want,+got):\n%s", diff)
	}
}
