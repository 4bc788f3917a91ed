package join

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSanitizeName(t *testing.T) {
	cases := []struct{ in, want string }{
		{"target-1", "target-1"},
		{"kind-eu", "kind-eu"},
		{"Prod", "prod"},
		{"gke_my-project_europe-west1-b_prod", "gke-my-project-europe-west1-b-prod"},
		{"arn:aws:eks:us-east-1:123456789012:cluster/prod", "arn-aws-eks-us-east-1-123456789012-cluster-prod"},
		{"--a..b--", "a-b"},
		{"_", ""},
		{"", ""},
		{strings.Repeat("a", 62) + "_b", strings.Repeat("a", 62)},
		{strings.Repeat("x", 70), strings.Repeat("x", 63)},
	}
	for _, tc := range cases {
		if got := SanitizeName(tc.in); got != tc.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestResolveNames(t *testing.T) {
	cases := []struct {
		name           string
		opts           Options
		source, target string
		want           Names
		wantErr        string
	}{
		{name: "defaults from the kubeconfig", source: "hub", target: "eu",
			want: Names{Target: "eu", Source: "hub", TokenSecret: "hub-token", Namespace: SystemNamespace, ClusterScoped: true}},
		{name: "cluster names made DNS-1123 labels", source: "gke_p_z_Hub", target: "arn:aws:eks:r:1:cluster/EU",
			want: Names{Target: "arn-aws-eks-r-1-cluster-eu", Source: "gke-p-z-hub", TokenSecret: "gke-p-z-hub-token", Namespace: SystemNamespace, ClusterScoped: true}},
		{name: "explicit names", opts: Options{Name: "west", SourceName: "central"}, source: "hub", target: "eu",
			want: Names{Target: "west", Source: "central", TokenSecret: "central-token", Namespace: SystemNamespace, ClusterScoped: true}},
		{name: "namespaced", opts: Options{Namespace: "team-a"}, source: "hub", target: "eu",
			want: Names{Target: "eu", Source: "hub", TokenSecret: "hub-token", Namespace: "team-a"}},
		{name: "invalid name", opts: Options{Name: "EU_west"}, source: "hub", target: "eu",
			wantErr: `invalid --name "EU_west": a lowercase RFC 1123 label`},
		{name: "invalid source name", opts: Options{SourceName: "hub.example.com"}, source: "hub", target: "eu",
			wantErr: `invalid --source-name "hub.example.com"`},
		{name: "name too long", opts: Options{Name: strings.Repeat("a", 64)}, source: "hub", target: "eu",
			wantErr: "must be no more than 63 characters"},
		{name: "invalid namespace", opts: Options{Namespace: "Team"}, source: "hub", target: "eu",
			wantErr: `invalid --namespace "Team"`},
		{name: "no name to derive", source: "hub", target: "___",
			wantErr: `cannot make a name of the target's cluster name "___": set --name`},
		{name: "no source name to derive", source: "", target: "eu",
			wantErr: `cannot make a name of the source's cluster name "": set --source-name`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveNames(tc.opts, tc.source, tc.target)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("names (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestVirtualNodeName(t *testing.T) {
	if got := (Names{Target: "eu", ClusterScoped: true}).VirtualNodeName(); got != "admiralty-eu" {
		t.Errorf("ClusterTarget eu: virtual node %q", got)
	}
	if got := (Names{Target: "eu", Namespace: "team-a"}).VirtualNodeName(); got != "admiralty-team-a-eu" {
		t.Errorf("Target team-a/eu: virtual node %q", got)
	}
}
