package cleanup

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

// The source's targets, and the clusters they lead to.
var (
	// keyEU, a ClusterTarget, and keyEUTeam, a Target in namespace, both
	// lead to cluster eu.
	keyEU     = remote.Key{Name: "eu"}
	keyEUTeam = remote.Key{Namespace: namespace, Name: "eu-team"}
	keyUS     = remote.Key{Name: "us"}
	// keyDown is connected but not Ready.
	keyDown = remote.Key{Name: "down"}
	// keyGone is not connected.
	keyGone = remote.Key{Name: "gone"}

	clusterOf = map[remote.Key]string{keyEU: "eu", keyEUTeam: "eu", keyUS: "us", keyDown: "down", keyGone: "gone"}
	clusters  = []string{"eu", "us", "down", "gone"}
)

// mine is a chaperon in namespace ns that sourceID made through key.
func mine(ns, name string, key remote.Key, opts ...chaperonOpt) *multiclusterv1alpha1.PodChaperon {
	return chaperon(name, append([]chaperonOpt{inNamespace(ns), throughTarget(key.String())}, opts...)...)
}

// leaseOf is the Lease that Heartbeat keeps for sourceID through key in ns,
// renewed at renewed.
func leaseOf(ns string, key remote.Key, renewed time.Time) *coordinationv1.Lease {
	return sourceLease(ns, sourceID, key.String(), renewed)
}

// fleet is the source's connections to its targets' clusters.
type fleet struct {
	t       *testing.T
	ctx     context.Context
	fake    *remote.Fake
	clients map[string]client.Client
	// failList makes listing chaperons fail, by cluster.
	failList map[string]bool
	// failDelete makes deleting Leases fail, by cluster.
	failDelete map[string]bool
	// refuseChaperonDeletes makes deleting chaperons fail, by cluster.
	refuseChaperonDeletes map[string]bool
	// hang makes writing Leases hang until the request's context ends, by
	// cluster.
	hang map[string]bool
}

func newFleet(t *testing.T, objects map[string][]client.Object, connected []remote.Key) *fleet {
	_, ctx := ktesting.NewTestContext(t)
	f := &fleet{t: t, ctx: ctx, clients: map[string]client.Client{}, failList: map[string]bool{}, failDelete: map[string]bool{},
		refuseChaperonDeletes: map[string]bool{}, hang: map[string]bool{}}
	for _, name := range clusters {
		f.clients[name] = fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(objects[name]...).
			WithInterceptorFuncs(interceptor.Funcs{
				List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
					if _, ok := list.(*multiclusterv1alpha1.PodChaperonList); ok && f.failList[name] {
						return errors.New("podchaperons.multicluster.admiralty.io is forbidden")
					}
					return c.List(ctx, list, opts...)
				},
				Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
					if _, ok := obj.(*coordinationv1.Lease); ok && f.hang[name] {
						<-ctx.Done()
						return ctx.Err()
					}
					return c.Patch(ctx, obj, patch, opts...)
				},
				Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
					if _, ok := obj.(*coordinationv1.Lease); ok && f.failDelete[name] {
						return errors.New("etcdserver: request timed out")
					}
					if _, ok := obj.(*multiclusterv1alpha1.PodChaperon); ok && f.refuseChaperonDeletes[name] {
						return apierrors.NewForbidden(multiclusterv1alpha1.GroupVersion.WithResource("podchaperons").GroupResource(),
							obj.GetName(), errors.New("admission webhook \"policy.example.com\" denied the request"))
					}
					return c.Delete(ctx, obj, opts...)
				},
			}).Build()
	}
	f.fake = &remote.Fake{Clients: map[remote.Key]client.Client{}, Healths: map[remote.Key]remote.Health{}}
	for key, name := range clusterOf {
		f.fake.Clients[key] = f.clients[name]
	}
	for _, key := range connected {
		if _, err := f.fake.Connect(ctx, key, nil, "fingerprint"); err != nil {
			t.Fatalf("Connecting %s: %v", key, err)
		}
	}
	return f
}

// leases are the Leases in cluster.
func (f *fleet) leases(cluster string) []*coordinationv1.Lease {
	f.t.Helper()
	list := &coordinationv1.LeaseList{}
	if err := f.clients[cluster].List(f.ctx, list); err != nil {
		f.t.Fatalf("Listing leases in %s: %v", cluster, err)
	}
	var out []*coordinationv1.Lease
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out
}

var leaseDiffOpts = []cmp.Option{
	cmpopts.IgnoreFields(metav1.ObjectMeta{}, "ResourceVersion"),
	cmpopts.IgnoreFields(coordinationv1.Lease{}, "TypeMeta"),
	cmpopts.SortSlices(func(a, b *coordinationv1.Lease) bool {
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	}),
	cmpopts.EquateEmpty(),
}

func (f *fleet) checkLeases(t *testing.T, want map[string][]*coordinationv1.Lease) {
	t.Helper()
	for _, cluster := range clusters {
		if diff := cmp.Diff(want[cluster], f.leases(cluster), leaseDiffOpts...); diff != "" {
			t.Errorf("Leases in cluster %s (-want,+got):\n%s", cluster, diff)
		}
	}
}

func TestBeat(t *testing.T) {
	notReady := remote.Health{Reason: multiclusterv1alpha1.ReasonUnauthorized, Message: "401 Unauthorized"}
	cases := []struct {
		name      string
		objects   map[string][]client.Object
		connected []remote.Key
		healths   map[remote.Key]remote.Health
		failList  []string
		want      map[string][]*coordinationv1.Lease
	}{
		{
			name:      "no chaperons: no leases",
			connected: []remote.Key{keyEU, keyEUTeam, keyUS},
		},
		{
			name: "a lease per namespace with this source's chaperons through the target",
			objects: map[string][]client.Object{
				"eu": {
					mine(namespace, "web-0", keyEU),
					mine(namespace, "web-1", keyEU),
					mine("team-b", "web-0", keyEU),
					mine(namespace, "api-0", keyEUTeam),
					// keyEUTeam is a Target of namespace: it has no business
					// elsewhere.
					mine("team-b", "api-0", keyEUTeam),
					mine("team-c", "web-0", keyEU, ofSource(otherSourceID)),
					mine("team-d", "web-0", keyEU, withoutTarget),
					mine("team-e", "web-0", keyEU, withoutSource),
					mine("team-f", "web-0", keyUS),
				},
				"us": {mine("team-b", "web-0", keyUS)},
			},
			connected: []remote.Key{keyEU, keyEUTeam, keyUS},
			want: map[string][]*coordinationv1.Lease{
				"eu": {
					leaseOf(namespace, keyEU, start),
					leaseOf("team-b", keyEU, start),
					leaseOf(namespace, keyEUTeam, start),
				},
				"us": {leaseOf("team-b", keyUS, start)},
			},
		},
		{
			name: "an existing lease: renewed, with this heartbeat's duration",
			objects: map[string][]client.Object{
				"eu": {
					mine(namespace, "web-0", keyEU),
					func() *coordinationv1.Lease {
						l := leaseOf(namespace, keyEU, start.Add(-time.Hour))
						l.Spec.LeaseDurationSeconds = ptr.To[int32](15)
						return l
					}(),
				},
			},
			connected: []remote.Key{keyEU},
			want:      map[string][]*coordinationv1.Lease{"eu": {leaseOf(namespace, keyEU, start)}},
		},
		{
			// Its probe may only have timed out on a loaded API server: a
			// Lease that runs out would get live workloads collected.
			name: "a target that is not Ready: renewed all the same",
			objects: map[string][]client.Object{
				"eu":   {mine(namespace, "web-0", keyEU)},
				"down": {mine(namespace, "web-0", keyDown), mine("team-b", "web-0", keyDown), leaseOf(namespace, keyDown, start.Add(-time.Hour))},
			},
			connected: []remote.Key{keyEU, keyDown},
			healths:   map[remote.Key]remote.Health{keyDown: notReady},
			want: map[string][]*coordinationv1.Lease{
				"eu":   {leaseOf(namespace, keyEU, start)},
				"down": {leaseOf(namespace, keyDown, start), leaseOf("team-b", keyDown, start)},
			},
		},
		{
			name: "a target that is not connected: skipped",
			objects: map[string][]client.Object{
				"eu":   {mine(namespace, "web-0", keyEU)},
				"gone": {mine(namespace, "web-0", keyGone)},
			},
			connected: []remote.Key{keyEU},
			want:      map[string][]*coordinationv1.Lease{"eu": {leaseOf(namespace, keyEU, start)}},
		},
		{
			name: "a target whose chaperons cannot be listed does not hold up the others",
			objects: map[string][]client.Object{
				"eu": {mine(namespace, "web-0", keyEU)},
				"us": {mine(namespace, "web-0", keyUS)},
			},
			connected: []remote.Key{keyUS, keyEU},
			failList:  []string{"us"},
			want:      map[string][]*coordinationv1.Lease{"eu": {leaseOf(namespace, keyEU, start)}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, tc.objects, tc.connected)
			for key, h := range tc.healths {
				f.fake.Healths[key] = h
			}
			for _, c := range tc.failList {
				f.failList[c] = true
			}
			h := &Heartbeat{Fleet: f.fake, SourceID: sourceID, Duration: duration, Clock: clocktesting.NewFakeClock(start)}
			h.Beat(f.ctx)
			f.checkLeases(t, tc.want)
		})
	}
}

// A target whose API server does not answer holds up no other target's
// renewal: each is beaten in parallel, for at most half a Lease.
func TestBeatHungTarget(t *testing.T) {
	f := newFleet(t, map[string][]client.Object{
		"eu": {mine(namespace, "web-0", keyEU)},
		"us": {mine(namespace, "web-0", keyUS), leaseOf(namespace, keyUS, start.Add(-time.Hour))},
	}, []remote.Key{keyUS, keyEU})
	f.hang["us"] = true
	h := &Heartbeat{Fleet: f.fake, SourceID: sourceID, Duration: 400 * time.Millisecond, Clock: clocktesting.NewFakeClock(start)}
	began := time.Now()
	h.Beat(f.ctx)
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("Beat took %s with a hung target", took)
	}
	eu := f.leases("eu")
	if len(eu) != 1 || !eu[0].Spec.RenewTime.Time.Equal(start) {
		t.Errorf("eu's leases = %v, want one renewed at %s", eu, start)
	}
	if us := f.leases("us"); len(us) != 1 || !us[0].Spec.RenewTime.Time.Equal(start.Add(-time.Hour)) {
		t.Errorf("us's leases = %v, want the old one", us)
	}
}

// TestBeatOverTime follows one target's Leases from Beat to Beat.
func TestBeatOverTime(t *testing.T) {
	f := newFleet(t, map[string][]client.Object{"eu": {
		mine(namespace, "web-0", keyEU),
		mine("team-b", "web-0", keyEU),
	}}, []remote.Key{keyEU})
	clock := clocktesting.NewFakeClock(start)
	h := &Heartbeat{Fleet: f.fake, SourceID: sourceID, Duration: duration, Clock: clock}
	eu := f.clients["eu"]
	deleteChaperon := func(ns string) func() {
		return func() {
			if err := eu.Delete(f.ctx, mine(ns, "web-0", keyEU)); err != nil {
				t.Fatalf("Deleting the chaperon in %s: %v", ns, err)
			}
		}
	}
	at := func(d time.Duration) time.Time { return start.Add(d) }
	steps := []struct {
		desc string
		do   []func()
		want []*coordinationv1.Lease
	}{
		{
			desc: "first beat",
			want: []*coordinationv1.Lease{leaseOf(namespace, keyEU, start), leaseOf("team-b", keyEU, start)},
		},
		{
			desc: "team-b's chaperons gone: its lease deleted",
			do:   []func(){deleteChaperon("team-b")},
			want: []*coordinationv1.Lease{leaseOf(namespace, keyEU, at(20*time.Second))},
		},
		{
			desc: "a chaperon in team-b again: a lease again",
			do: []func(){func() {
				if err := eu.Create(f.ctx, mine("team-b", "web-0", keyEU)); err != nil {
					t.Fatalf("Creating a chaperon: %v", err)
				}
			}},
			want: []*coordinationv1.Lease{leaseOf(namespace, keyEU, at(40*time.Second)), leaseOf("team-b", keyEU, at(40*time.Second))},
		},
		{
			desc: "target not Ready: renewed, the lease of a namespace emptied meanwhile kept",
			do: []func(){
				func() { f.fake.Healths[keyEU] = remote.Health{Reason: multiclusterv1alpha1.ReasonUnauthorized} },
				deleteChaperon(namespace),
			},
			want: []*coordinationv1.Lease{leaseOf(namespace, keyEU, at(40*time.Second)), leaseOf("team-b", keyEU, at(60*time.Second))},
		},
		{
			desc: "target Ready again: the lease of the namespace emptied meanwhile deleted",
			do:   []func(){func() { delete(f.fake.Healths, keyEU) }},
			want: []*coordinationv1.Lease{leaseOf("team-b", keyEU, at(80*time.Second))},
		},
		{
			desc: "the lease cannot be deleted: kept",
			do:   []func(){deleteChaperon("team-b"), func() { f.failDelete["eu"] = true }},
			want: []*coordinationv1.Lease{leaseOf("team-b", keyEU, at(80*time.Second))},
		},
		{
			desc: "the lease can be deleted: deleted on the next beat",
			do:   []func(){func() { f.failDelete["eu"] = false }},
		},
		{
			desc: "a chaperon in namespace again: a lease again",
			do: []func(){func() {
				if err := eu.Create(f.ctx, mine(namespace, "web-0", keyEU)); err != nil {
					t.Fatalf("Creating a chaperon: %v", err)
				}
			}},
			want: []*coordinationv1.Lease{leaseOf(namespace, keyEU, at(140*time.Second))},
		},
		{
			desc: "chaperons cannot be listed: leases left as they are",
			do:   []func(){func() { f.failList["eu"] = true }, deleteChaperon(namespace)},
			want: []*coordinationv1.Lease{leaseOf(namespace, keyEU, at(140*time.Second))},
		},
		{
			desc: "chaperons listed again: the lease of the namespace emptied meanwhile deleted",
			do:   []func(){func() { f.failList["eu"] = false }},
		},
	}
	for i, s := range steps {
		if i > 0 {
			clock.Step(duration / 3)
		}
		for _, do := range s.do {
			do()
		}
		h.Beat(f.ctx)
		if diff := cmp.Diff(s.want, f.leases("eu"), leaseDiffOpts...); diff != "" {
			t.Errorf("Step %d (%s): leases (-want,+got):\n%s", i, s.desc, diff)
		}
	}
}

// TestStart: a beat at once, then one every third of DefaultLeaseDuration.
func TestStart(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// wrote tells of each Lease written.
	wrote := make(chan struct{}, 10)
	tell := func(err error) error {
		if err == nil {
			wrote <- struct{}{}
		}
		return err
	}
	eu := fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(mine(namespace, "web-0", keyEU)).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				return tell(c.Create(ctx, obj, opts...))
			},
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				return tell(c.Patch(ctx, obj, patch, opts...))
			},
		}).Build()
	connector := &remote.Fake{Clients: map[remote.Key]client.Client{keyEU: eu}}
	if _, err := connector.Connect(ctx, keyEU, nil, "fingerprint"); err != nil {
		t.Fatalf("Connecting: %v", err)
	}
	clock := clocktesting.NewFakeClock(start)
	h := &Heartbeat{Fleet: connector, SourceID: sourceID, Clock: clock}
	done := make(chan error)
	go func() { done <- h.Start(ctx) }()

	wantLease := func(renewed time.Time) {
		t.Helper()
		select {
		case <-wrote:
		case <-time.After(10 * time.Second):
			t.Fatalf("No lease written for %s", renewed.Sub(start))
		}
		got := &coordinationv1.Lease{}
		want := sourceLease(namespace, sourceID, keyEU.String(), renewed)
		want.Spec.LeaseDurationSeconds = ptr.To(int32(DefaultLeaseDuration / time.Second))
		if err := eu.Get(ctx, client.ObjectKeyFromObject(want), got); err != nil {
			t.Fatalf("Reading the lease: %v", err)
		}
		if diff := cmp.Diff(want, got, leaseDiffOpts...); diff != "" {
			t.Errorf("Lease (-want,+got):\n%s", diff)
		}
	}
	wantLease(start)
	clock.Step(DefaultLeaseDuration / 3)
	wantLease(start.Add(DefaultLeaseDuration / 3))

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start() = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after its context ended")
	}
}

func TestNeedLeaderElection(t *testing.T) {
	if !(&Heartbeat{}).NeedLeaderElection() {
		t.Error("NeedLeaderElection() = false, want true: two replicas would renew the same Leases")
	}
}

// proxiedBy names the chaperon's proxy pod, as protocol.NewChaperon does.
func proxiedBy(name string, uid types.UID) chaperonOpt {
	return func(ch *multiclusterv1alpha1.PodChaperon) {
		ch.Annotations[protocol.ProxyPodNameAnnotation] = name
		ch.Labels[protocol.ProxyPodUIDLabel] = string(uid)
	}
}

// proxyPod is a proxy pod in the source.
func proxyPod(ns, name string, uid types.UID) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid}}
}

// chaperonNames are the chaperons in c, as "namespace/name".
func chaperonNames(t *testing.T, ctx context.Context, c client.Client) []string {
	t.Helper()
	list := &multiclusterv1alpha1.PodChaperonList{}
	if err := c.List(ctx, list); err != nil {
		t.Fatalf("Listing chaperons: %v", err)
	}
	var out []string
	for i := range list.Items {
		out = append(out, list.Items[i].Namespace+"/"+list.Items[i].Name)
	}
	return out
}

// TestBeatProxyGone: a chaperon whose proxy pod is gone from the source is
// deleted instead of renewed.
func TestBeatProxyGone(t *testing.T) {
	const (
		uid      = types.UID("proxy-uid")
		otherUID = types.UID("another-proxy-uid")
	)
	cases := []struct {
		name string
		// chaperons are in cluster eu, through keyEU.
		chaperons []client.Object
		// cached and live are the source's pods, in its cache and its API
		// server; noProxies: the heartbeat has no reader of them.
		cached, live []client.Object
		noProxies    bool
		// wantLeases are the namespaces with a Lease in eu.
		wantLeases    []string
		wantChaperons []string
	}{
		{
			name:          "proxy pod in the cache: renewed",
			chaperons:     []client.Object{mine(namespace, "web-0", keyEU, proxiedBy("web-0", uid))},
			cached:        []client.Object{proxyPod(namespace, "web-0", uid)},
			live:          []client.Object{proxyPod(namespace, "web-0", uid)},
			wantLeases:    []string{namespace},
			wantChaperons: []string{namespace + "/web-0"},
		},
		{
			name:          "proxy pod not in the cache yet, in the API server: renewed",
			chaperons:     []client.Object{mine(namespace, "web-0", keyEU, proxiedBy("web-0", uid))},
			live:          []client.Object{proxyPod(namespace, "web-0", uid)},
			wantLeases:    []string{namespace},
			wantChaperons: []string{namespace + "/web-0"},
		},
		{
			name:          "stale cache with another pod of that name, the API server has the proxy pod: renewed",
			chaperons:     []client.Object{mine(namespace, "web-0", keyEU, proxiedBy("web-0", uid))},
			cached:        []client.Object{proxyPod(namespace, "web-0", otherUID)},
			live:          []client.Object{proxyPod(namespace, "web-0", uid)},
			wantLeases:    []string{namespace},
			wantChaperons: []string{namespace + "/web-0"},
		},
		{
			name: "proxy pod gone: chaperon deleted, no lease for it",
			chaperons: []client.Object{
				mine(namespace, "web-0", keyEU, proxiedBy("web-0", uid)),
				mine("team-b", "web-0", keyEU, proxiedBy("web-0", otherUID)),
			},
			cached:        []client.Object{proxyPod(namespace, "web-0", uid)},
			live:          []client.Object{proxyPod(namespace, "web-0", uid)},
			wantLeases:    []string{namespace},
			wantChaperons: []string{namespace + "/web-0"},
		},
		{
			// The cache has the last word while it has the proxy pod; it
			// catches up by a later beat.
			name:          "proxy pod deleted, the cache does not know yet: renewed",
			chaperons:     []client.Object{mine(namespace, "web-0", keyEU, proxiedBy("web-0", uid))},
			cached:        []client.Object{proxyPod(namespace, "web-0", uid)},
			wantLeases:    []string{namespace},
			wantChaperons: []string{namespace + "/web-0"},
		},
		{
			name:      "proxy pod replaced by another of the same name: chaperon deleted",
			chaperons: []client.Object{mine(namespace, "web-0", keyEU, proxiedBy("web-0", uid))},
			cached:    []client.Object{proxyPod(namespace, "web-0", otherUID)},
			live:      []client.Object{proxyPod(namespace, "web-0", otherUID)},
		},
		{
			name: "another chaperon in the namespace still stands for its proxy pod: the lease stays",
			chaperons: []client.Object{
				mine(namespace, "web-0", keyEU, proxiedBy("web-0", uid)),
				mine(namespace, "web-1", keyEU, proxiedBy("web-1", otherUID)),
			},
			cached:        []client.Object{proxyPod(namespace, "web-1", otherUID)},
			live:          []client.Object{proxyPod(namespace, "web-1", otherUID)},
			wantLeases:    []string{namespace},
			wantChaperons: []string{namespace + "/web-1"},
		},
		{
			name:          "chaperon that does not name its proxy pod: renewed",
			chaperons:     []client.Object{mine(namespace, "web-0", keyEU)},
			wantLeases:    []string{namespace},
			wantChaperons: []string{namespace + "/web-0"},
		},
		{
			name:          "no reader of the proxy pods: nothing checked",
			chaperons:     []client.Object{mine(namespace, "web-0", keyEU, proxiedBy("web-0", uid))},
			noProxies:     true,
			wantLeases:    []string{namespace},
			wantChaperons: []string{namespace + "/web-0"},
		},
		{
			name: "chaperon being deleted: no lease for it",
			chaperons: []client.Object{
				mine(namespace, "web-0", keyEU, proxiedBy("web-0", uid)),
				mine("team-b", "web-0", keyEU, proxiedBy("web-0", otherUID), deleting),
			},
			cached:        []client.Object{proxyPod(namespace, "web-0", uid), proxyPod("team-b", "web-0", otherUID)},
			live:          []client.Object{proxyPod(namespace, "web-0", uid), proxyPod("team-b", "web-0", otherUID)},
			wantLeases:    []string{namespace},
			wantChaperons: []string{namespace + "/web-0", "team-b/web-0"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, map[string][]client.Object{"eu": tc.chaperons}, []remote.Key{keyEU})
			h := &Heartbeat{Fleet: f.fake, SourceID: sourceID, Duration: duration, Clock: clocktesting.NewFakeClock(start),
				APIReader: fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(tc.live...).Build()}
			if !tc.noProxies {
				h.Proxies = fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(tc.cached...).Build()
			}
			h.Beat(f.ctx)
			var want []*coordinationv1.Lease
			for _, ns := range tc.wantLeases {
				want = append(want, leaseOf(ns, keyEU, start))
			}
			if diff := cmp.Diff(want, f.leases("eu"), leaseDiffOpts...); diff != "" {
				t.Errorf("Leases (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantChaperons, chaperonNames(t, f.ctx, f.clients["eu"]), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Chaperons (-want,+got):\n%s", diff)
			}
		})
	}
}

// One chaperon the heartbeat cannot deal with (here the target's admission
// refuses to delete it, though its proxy pod is gone) does not hold up the
// Leases of the others: its namespace counts as held, and the namespaces
// whose proxy pods are alive keep their Leases.
func TestOneChaperonDoesNotHoldUpItsTargetsLeases(t *testing.T) {
	const uid = types.UID("proxy-uid")
	f := newFleet(t, map[string][]client.Object{"eu": {
		mine(namespace, "web-0", keyEU, proxiedBy("web-0", uid)),
		mine("team-b", "web-0", keyEU, proxiedBy("web-0", uid)),
	}}, []remote.Key{keyEU})
	f.refuseChaperonDeletes["eu"] = true
	alive := proxyPod(namespace, "web-0", uid)
	h := &Heartbeat{Fleet: f.fake, SourceID: sourceID, Duration: duration, Clock: clocktesting.NewFakeClock(start),
		Proxies:   fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(alive.DeepCopy()).Build(),
		APIReader: fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(alive.DeepCopy()).Build()}
	h.Beat(f.ctx)
	got := &coordinationv1.Lease{}
	if err := f.clients["eu"].Get(f.ctx, client.ObjectKeyFromObject(leaseOf(namespace, keyEU, start)), got); err != nil {
		t.Errorf("The lease of %s, whose proxy pod is alive: %v", namespace, err)
	}
}
