package protocol

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

// makeChaperon is a chaperon of proxy pod uid ("" for no UID label) with
// the given annotations and status conditions.
func makeChaperon(uid string, annotations map[string]string, conds ...corev1.PodCondition) *multiclusterv1alpha1.PodChaperon {
	ch := &multiclusterv1alpha1.PodChaperon{}
	ch.Name = "web-0-abcdef01"
	ch.Namespace = "default"
	if uid != "" {
		ch.Labels = map[string]string{ProxyPodUIDLabel: uid}
	}
	ch.Annotations = annotations
	ch.Status.Conditions = conds
	return ch
}

func scheduledCond(status corev1.ConditionStatus, reason, message string) corev1.PodCondition {
	return corev1.PodCondition{Type: corev1.PodScheduled, Status: status, Reason: reason, Message: message}
}

func TestVerdictOf(t *testing.T) {
	const msg = "0/3 nodes are available: 3 Insufficient cpu."
	unschedulable := scheduledCond(corev1.ConditionFalse, corev1.PodReasonUnschedulable, msg)
	cases := []struct {
		name        string
		annotations map[string]string
		conds       []corev1.PodCondition
		want        Verdict
	}{
		{name: "no marks, no status", want: Verdict{State: StatePending}},
		{
			name:  "unrelated condition",
			conds: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			want:  Verdict{State: StatePending},
		},
		{
			name:        "reservation",
			annotations: map[string]string{ReservationAnnotation: "3/node-a"},
			want:        Verdict{State: StateReserved, Attempt: 3, Node: "node-a"},
		},
		{
			name:        "released reservation",
			annotations: map[string]string{ReservationAnnotation: "3/"},
			want:        Verdict{State: StatePending},
		},
		{
			name:        "released reservation, unschedulable",
			annotations: map[string]string{ReservationAnnotation: "3/"},
			conds:       []corev1.PodCondition{unschedulable},
			want:        Verdict{State: StateUnschedulable, Message: msg},
		},
		{
			name:  "unschedulable without marks",
			conds: []corev1.PodCondition{unschedulable},
			want:  Verdict{State: StateUnschedulable, Message: msg},
		},
		{
			name:        "released reservation, not scheduled for another reason",
			annotations: map[string]string{ReservationAnnotation: "3/"},
			conds:       []corev1.PodCondition{scheduledCond(corev1.ConditionFalse, corev1.PodReasonSchedulerError, "boom")},
			want:        Verdict{State: StatePending},
		},
		{
			name:  "not scheduled, gated",
			conds: []corev1.PodCondition{scheduledCond(corev1.ConditionFalse, corev1.PodReasonSchedulingGated, "gated")},
			want:  Verdict{State: StatePending},
		},
		{
			name:        "new reservation over a stale unschedulable condition",
			annotations: map[string]string{ReservationAnnotation: "4/node-a"},
			conds:       []corev1.PodCondition{unschedulable},
			want:        Verdict{State: StateReserved, Attempt: 4, Node: "node-a"},
		},
		{
			name:        "binding",
			annotations: map[string]string{BindingAnnotation: "4/node-b"},
			want:        Verdict{State: StateBinding, Attempt: 4, Node: "node-b"},
		},
		{
			name:        "binding takes precedence over reservation",
			annotations: map[string]string{ReservationAnnotation: "3/node-a", BindingAnnotation: "4/node-b"},
			want:        Verdict{State: StateBinding, Attempt: 4, Node: "node-b"},
		},
		{
			name:        "binding takes precedence over unschedulable",
			annotations: map[string]string{ReservationAnnotation: "4/", BindingAnnotation: "4/node-b"},
			conds:       []corev1.PodCondition{unschedulable},
			want:        Verdict{State: StateBinding, Attempt: 4, Node: "node-b"},
		},
		{
			name:        "bound",
			annotations: map[string]string{ReservationAnnotation: "4/node-b", BindingAnnotation: "4/node-b"},
			conds:       []corev1.PodCondition{scheduledCond(corev1.ConditionTrue, "", "")},
			want:        Verdict{State: StateBound, Attempt: 4, Node: "node-b"},
		},
		{
			name:        "bound, node from the binding mark",
			annotations: map[string]string{ReservationAnnotation: "5/node-a", BindingAnnotation: "4/node-b"},
			conds:       []corev1.PodCondition{scheduledCond(corev1.ConditionTrue, "", "")},
			want:        Verdict{State: StateBound, Attempt: 4, Node: "node-b"},
		},
		{
			name:        "malformed reservation: attempt not a number",
			annotations: map[string]string{ReservationAnnotation: "x/node"},
			want:        Verdict{State: StatePending},
		},
		{
			name:        "malformed reservation: attempt 0",
			annotations: map[string]string{ReservationAnnotation: "0/n"},
			want:        Verdict{State: StatePending},
		},
		{
			name:        "malformed reservation: negative attempt",
			annotations: map[string]string{ReservationAnnotation: "-1/n"},
			want:        Verdict{State: StatePending},
		},
		{
			name:        "malformed reservation: empty",
			annotations: map[string]string{ReservationAnnotation: ""},
			want:        Verdict{State: StatePending},
		},
		{
			name:        "malformed reservation: no slash",
			annotations: map[string]string{ReservationAnnotation: "nodeonly"},
			want:        Verdict{State: StatePending},
		},
		{
			name:        "malformed reservation, unschedulable",
			annotations: map[string]string{ReservationAnnotation: "x/node"},
			conds:       []corev1.PodCondition{unschedulable},
			want:        Verdict{State: StateUnschedulable, Message: msg},
		},
		{
			name:        "malformed binding ignored: attempt not a number",
			annotations: map[string]string{ReservationAnnotation: "3/node-a", BindingAnnotation: "x/node"},
			want:        Verdict{State: StateReserved, Attempt: 3, Node: "node-a"},
		},
		{
			name:        "malformed binding ignored: attempt 0",
			annotations: map[string]string{ReservationAnnotation: "3/node-a", BindingAnnotation: "0/n"},
			want:        Verdict{State: StateReserved, Attempt: 3, Node: "node-a"},
		},
		{
			name:        "malformed binding ignored: empty",
			annotations: map[string]string{ReservationAnnotation: "3/node-a", BindingAnnotation: ""},
			want:        Verdict{State: StateReserved, Attempt: 3, Node: "node-a"},
		},
		{
			name:        "malformed binding ignored: no slash",
			annotations: map[string]string{BindingAnnotation: "nodeonly"},
			want:        Verdict{State: StatePending},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := VerdictOf(makeChaperon("uid-1", tc.annotations, tc.conds...))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("VerdictOf (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestDecided(t *testing.T) {
	cases := []struct {
		name        string
		annotations map[string]string
		conds       []corev1.PodCondition
		want        bool
	}{
		{
			name:        "allowed",
			annotations: map[string]string{ReservationAnnotation: "3/node-a", AllowedAnnotation: "uid-1/3"},
			want:        true,
		},
		{
			name:        "binding",
			annotations: map[string]string{ReservationAnnotation: "3/node-a", BindingAnnotation: "3/node-a"},
			want:        true,
		},
		{
			name:        "bound",
			annotations: map[string]string{BindingAnnotation: "3/node-a"},
			conds:       []corev1.PodCondition{scheduledCond(corev1.ConditionTrue, "", "")},
			want:        true,
		},
		{
			name:        "reserved",
			annotations: map[string]string{ReservationAnnotation: "3/node-a"},
			want:        false,
		},
		{
			name:        "unschedulable",
			annotations: map[string]string{ReservationAnnotation: "3/"},
			conds:       []corev1.PodCondition{scheduledCond(corev1.ConditionFalse, corev1.PodReasonUnschedulable, "no")},
			want:        false,
		},
		{name: "pending", want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Decided(makeChaperon("uid-1", tc.annotations, tc.conds...))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decided (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestLastAttempt(t *testing.T) {
	cases := []struct {
		name        string
		annotations map[string]string
		want        int64
	}{
		{name: "none", want: 0},
		{name: "reservation", annotations: map[string]string{ReservationAnnotation: "3/node-a"}, want: 3},
		{name: "released reservation", annotations: map[string]string{ReservationAnnotation: "5/"}, want: 5},
		{name: "binding", annotations: map[string]string{BindingAnnotation: "2/node-a"}, want: 2},
		{
			name:        "reservation later than binding",
			annotations: map[string]string{ReservationAnnotation: "5/", BindingAnnotation: "3/node-a"},
			want:        5,
		},
		{
			name:        "binding later than reservation",
			annotations: map[string]string{ReservationAnnotation: "2/node-a", BindingAnnotation: "4/node-b"},
			want:        4,
		},
		{
			name:        "malformed marks",
			annotations: map[string]string{ReservationAnnotation: "x/node", BindingAnnotation: "nodeonly"},
			want:        0,
		},
		{
			name:        "allow mark does not count",
			annotations: map[string]string{ReservationAnnotation: "2/node-a", AllowedAnnotation: "uid-1/9"},
			want:        2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := LastAttempt(makeChaperon("uid-1", tc.annotations))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("LastAttempt (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestAllows(t *testing.T) {
	cases := []struct {
		name    string
		uid     string
		allowed *string
		binding string
		attempt int64
		want    bool
	}{
		{name: "own UID, same attempt", uid: "uid-1", allowed: ptr("uid-1/3"), attempt: 3, want: true},
		{name: "own UID, older attempt", uid: "uid-1", allowed: ptr("uid-1/2"), attempt: 3, want: false},
		{name: "own UID, later attempt", uid: "uid-1", allowed: ptr("uid-1/4"), attempt: 3, want: false},
		{name: "other UID, same attempt", uid: "uid-1", allowed: ptr("uid-2/3"), attempt: 3, want: false},
		{name: "missing UID label", uid: "", allowed: ptr("uid-1/3"), attempt: 3, want: false},
		{name: "missing UID label, mark with empty UID", uid: "", allowed: ptr("/3"), attempt: 3, want: false},
		{name: "no mark", uid: "uid-1", attempt: 3, want: false},
		{name: "empty mark", uid: "uid-1", allowed: ptr(""), attempt: 3, want: false},
		{name: "committed, later attempt", uid: "uid-1", allowed: ptr("uid-1/3"), binding: "3/node-a", attempt: 4, want: true},
		{name: "committed, earlier attempt", uid: "uid-1", allowed: ptr("uid-1/3"), binding: "3/node-a", attempt: 2, want: false},
		{name: "committed, other UID", uid: "uid-1", allowed: ptr("uid-2/3"), binding: "3/node-a", attempt: 4, want: false},
		{name: "committed, no allow mark", uid: "uid-1", binding: "3/node-a", attempt: 4, want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			annotations := map[string]string{ReservationAnnotation: "3/node-a"}
			if tc.allowed != nil {
				annotations[AllowedAnnotation] = *tc.allowed
			}
			if tc.binding != "" {
				annotations[BindingAnnotation] = tc.binding
			}
			got := Allows(makeChaperon(tc.uid, annotations), tc.attempt)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Allows (-want,+got):\n%s", diff)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestMarks(t *testing.T) {
	cases := []struct {
		name        string
		annotations map[string]string
		wantMarks   map[string]string
		want        Verdict
		wantLast    int64
		wantAllows  []int64 // attempts that Allows must accept
		wantDecided bool
	}{
		{
			name:        "reservation",
			annotations: map[string]string{ReservationAnnotation: ReservationMark(7, "node-a")},
			wantMarks:   map[string]string{ReservationAnnotation: "7/node-a"},
			want:        Verdict{State: StateReserved, Attempt: 7, Node: "node-a"},
			wantLast:    7,
		},
		{
			name:        "released reservation",
			annotations: map[string]string{ReservationAnnotation: ReservationMark(7, "")},
			wantMarks:   map[string]string{ReservationAnnotation: "7/"},
			want:        Verdict{State: StatePending},
			wantLast:    7,
		},
		{
			name: "allowed reservation",
			annotations: map[string]string{
				ReservationAnnotation: ReservationMark(7, "node-a"),
				AllowedAnnotation:     AllowMark("uid-1", 7),
			},
			wantMarks:   map[string]string{ReservationAnnotation: "7/node-a", AllowedAnnotation: "uid-1/7"},
			want:        Verdict{State: StateReserved, Attempt: 7, Node: "node-a"},
			wantLast:    7,
			wantAllows:  []int64{7},
			wantDecided: true,
		},
		{
			name: "binding",
			annotations: map[string]string{
				ReservationAnnotation: ReservationMark(7, "node-a"),
				AllowedAnnotation:     AllowMark("uid-1", 7),
				BindingAnnotation:     BindingMark(7, "node-a"),
			},
			wantMarks: map[string]string{
				ReservationAnnotation: "7/node-a", AllowedAnnotation: "uid-1/7", BindingAnnotation: "7/node-a",
			},
			want:        Verdict{State: StateBinding, Attempt: 7, Node: "node-a"},
			wantLast:    7,
			wantAllows:  []int64{7, 8}, // committed: a later attempt may bind
			wantDecided: true,
		},
		{
			name:        "large attempt",
			annotations: map[string]string{BindingAnnotation: BindingMark(1<<40, "node-b")},
			wantMarks:   map[string]string{BindingAnnotation: "1099511627776/node-b"},
			want:        Verdict{State: StateBinding, Attempt: 1 << 40, Node: "node-b"},
			wantLast:    1 << 40,
			wantDecided: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.wantMarks, tc.annotations); diff != "" {
				t.Errorf("marks (-want,+got):\n%s", diff)
			}
			ch := makeChaperon("uid-1", tc.annotations)
			if diff := cmp.Diff(tc.want, VerdictOf(ch)); diff != "" {
				t.Errorf("VerdictOf (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantLast, LastAttempt(ch)); diff != "" {
				t.Errorf("LastAttempt (-want,+got):\n%s", diff)
			}
			for _, attempt := range []int64{6, 7, 8} {
				if diff := cmp.Diff(slices.Contains(tc.wantAllows, attempt), Allows(ch, attempt)); diff != "" {
					t.Errorf("Allows(%d) (-want,+got):\n%s", attempt, diff)
				}
			}
			if diff := cmp.Diff(tc.wantDecided, Decided(ch)); diff != "" {
				t.Errorf("Decided (-want,+got):\n%s", diff)
			}
		})
	}
}

var hashSuffix = regexp.MustCompile(`^-[0-9a-f]{8}$`)

func TestChaperonName(t *testing.T) {
	pod := func(name, uid string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(uid)}}
	}

	a1 := ChaperonName(pod("web-0", "uid-1"))
	if diff := cmp.Diff(a1, ChaperonName(pod("web-0", "uid-1"))); diff != "" {
		t.Errorf("ChaperonName is not deterministic (-want,+got):\n%s", diff)
	}
	if a2 := ChaperonName(pod("web-0", "uid-2")); a1 == a2 {
		t.Errorf("ChaperonName is %q for two UIDs of pod web-0", a1)
	}

	cases := []struct {
		name       string
		pod        string
		wantPrefix string
	}{
		{name: "short", pod: "web-0", wantPrefix: "web-0"},
		{name: "subdomain", pod: "web-0.svc", wantPrefix: "web-0.svc"},
		{name: "fits exactly", pod: strings.Repeat("a", 244), wantPrefix: strings.Repeat("a", 244)},
		{name: "253 characters", pod: strings.Repeat("a", 253), wantPrefix: strings.Repeat("a", 244)},
		{
			name:       "253 characters, cut after a dot",
			pod:        strings.Repeat("a", 243) + "." + strings.Repeat("b", 9),
			wantPrefix: strings.Repeat("a", 243),
		},
		{
			name:       "253 characters, cut after hyphens",
			pod:        strings.Repeat("a", 242) + "--" + strings.Repeat("b", 9),
			wantPrefix: strings.Repeat("a", 242),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ChaperonName(pod(tc.pod, "uid-1"))
			if len(got) > validation.DNS1123SubdomainMaxLength {
				t.Errorf("ChaperonName is %d characters long: %q", len(got), got)
			}
			prefix, suffix := got[:len(got)-9], got[len(got)-9:]
			if diff := cmp.Diff(tc.wantPrefix, prefix); diff != "" {
				t.Errorf("ChaperonName prefix (-want,+got):\n%s", diff)
			}
			if !hashSuffix.MatchString(suffix) {
				t.Errorf("ChaperonName suffix is %q, want - and 8 hex digits", suffix)
			}
			if strings.HasSuffix(prefix, "-") || strings.HasSuffix(prefix, ".") {
				t.Errorf("ChaperonName %q has '-' or '.' before the suffix", got)
			}
			if errs := validation.IsDNS1123Subdomain(got); len(errs) != 0 {
				t.Errorf("ChaperonName %q is not a DNS subdomain: %v", got, errs)
			}
			if diff := cmp.Diff(a1[len(a1)-9:], suffix); diff != "" {
				t.Errorf("ChaperonName suffix depends on more than the UID (-want,+got):\n%s", diff)
			}
		})
	}
}

// podSpec is a user's pod spec, as a proxy pod's manifest would hold it.
func podSpec() corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:  "app",
			Image: "nginx",
			VolumeMounts: []corev1.VolumeMount{
				{Name: "config", MountPath: "/etc/app"},
				{Name: "kube-api-access-abcde", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"},
			}}},
			{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}},
			}}},
		},
		ServiceAccountName: "app",
		PriorityClassName:  "high",
		Priority:           ptrInt32(1000),
	}
}

// delegateOf is podSpec() as DelegateSpec should make it.
func delegateOf() corev1.PodSpec {
	spec := podSpec()
	spec.SchedulerName = CandidateSchedulerName
	spec.Priority = nil
	spec.Containers[0].VolumeMounts = spec.Containers[0].VolumeMounts[:1]
	spec.Volumes = spec.Volumes[:1]
	return spec
}

func ptrInt32(i int32) *int32 { return &i }

func TestNewChaperon(t *testing.T) {
	manifest := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "web-0",
			Namespace: "default",
			Labels:    map[string]string{"app": "web"},
			Annotations: map[string]string{
				"keep":                                  "me",
				ElectAnnotation:                         "",
				SourcePodManifestAnnotation:             "{}",
				ProxyPodSchedulingConstraintsAnnotation: "{}",
				"kubectl.kubernetes.io/last-applied-configuration": "{}",
				ReservationAnnotation:                              "3/node-a",
				AllowedAnnotation:                                  "uid-1/3",
				BindingAnnotation:                                  "3/node-a",
			},
		},
		Spec: podSpec(),
	}
	raw, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy pod as the elect webhook and the proxy scheduler leave it.
	proxy := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "web-0",
			Namespace: "default",
			UID:       "uid-1",
			Labels:    map[string]string{"app": "web", "proxy-only": "yes"},
			Annotations: map[string]string{
				"keep":                      "me",
				"proxy-only":                "yes",
				ElectAnnotation:             "",
				SourcePodManifestAnnotation: string(raw),
			},
			Finalizers: []string{ProxyPodFinalizer},
		},
		Spec: corev1.PodSpec{
			SchedulerName: ProxySchedulerName,
			NodeName:      "admiralty-target-a",
			NodeSelector:  map[string]string{VirtualKubeletProviderKey: VirtualKubeletProvider},
			Tolerations: []corev1.Toleration{{
				Key: VirtualKubeletProviderKey, Value: VirtualKubeletProvider, Effect: corev1.TaintEffectNoSchedule,
			}},
			Containers: []corev1.Container{{Name: "app", Image: "nginx"}},
		},
	}
	// A pod that chose the proxy scheduler itself: no saved manifest.
	ownSpec := podSpec()
	ownSpec.SchedulerName = ProxySchedulerName
	ownSpec.NodeName = "admiralty-target-a"
	own := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "job-x",
			Namespace: "batch",
			UID:       "uid-2",
			Labels:    map[string]string{"job": "x"},
			Annotations: map[string]string{
				"keep": "me",
				"kubectl.kubernetes.io/last-applied-configuration": "{}",
				ProxyPodSchedulingConstraintsAnnotation:            "{}",
			},
		},
		Spec: ownSpec,
	}

	cases := []struct {
		name  string
		proxy *corev1.Pod
		want  *multiclusterv1alpha1.PodChaperon
	}{
		{
			name:  "saved manifest",
			proxy: proxy,
			want: &multiclusterv1alpha1.PodChaperon{
				ObjectMeta: metav1.ObjectMeta{
					Name:        ChaperonName(proxy),
					Namespace:   "default",
					Labels:      map[string]string{"app": "web", ProxyPodUIDLabel: "uid-1"},
					Annotations: map[string]string{"keep": "me", ProxyPodNameAnnotation: "web-0"},
				},
				Spec: delegateOf(),
			},
		},
		{
			name:  "no saved manifest",
			proxy: own,
			want: &multiclusterv1alpha1.PodChaperon{
				ObjectMeta: metav1.ObjectMeta{
					Name:        ChaperonName(own),
					Namespace:   "batch",
					Labels:      map[string]string{"job": "x", ProxyPodUIDLabel: "uid-2"},
					Annotations: map[string]string{"keep": "me", ProxyPodNameAnnotation: "job-x"},
				},
				Spec: delegateOf(),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.proxy.DeepCopy()
			got, err := NewChaperon(tc.proxy)
			if err != nil {
				t.Fatalf("NewChaperon: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("NewChaperon (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.proxy); diff != "" {
				t.Errorf("NewChaperon changed the proxy pod (-want,+got):\n%s", diff)
			}
		})
	}

	t.Run("invalid manifest", func(t *testing.T) {
		bad := proxy.DeepCopy()
		bad.Annotations[SourcePodManifestAnnotation] = "{not json"
		got, err := NewChaperon(bad)
		if err == nil {
			t.Fatalf("NewChaperon = %v, want an error", got)
		}
		if !strings.Contains(err.Error(), SourcePodManifestAnnotation) {
			t.Errorf("error %q does not name annotation %s", err, SourcePodManifestAnnotation)
		}
	})
}

func TestDelegateSpec(t *testing.T) {
	tokenMount := corev1.VolumeMount{Name: "kube-api-access-abcde", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}
	dataMount := corev1.VolumeMount{Name: "data", MountPath: "/data"}
	fakeMount := corev1.VolumeMount{Name: "kube-api-access-x", MountPath: "/x"}
	configMount := corev1.VolumeMount{Name: "config", MountPath: "/etc/app"}
	tokenVolume := corev1.Volume{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}},
	}}}
	fakeVolume := corev1.Volume{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	configVolume := corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"},
	}}}
	dataVolume := corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: "data"},
		}}},
	}}}
	preempt := corev1.PreemptNever

	cases := []struct {
		name string
		in   corev1.PodSpec
		want corev1.PodSpec
	}{
		{
			name: "scheduling fields",
			in: corev1.PodSpec{
				SchedulerName:     ProxySchedulerName,
				NodeName:          "admiralty-target-a",
				SchedulingGates:   []corev1.PodSchedulingGate{{Name: "example.com/gate"}},
				Priority:          ptrInt32(1000),
				PreemptionPolicy:  &preempt,
				PriorityClassName: "high",
				NodeSelector:      map[string]string{"disk": "ssd"},
				Containers:        []corev1.Container{{Name: "app", Image: "nginx"}},
			},
			want: corev1.PodSpec{
				SchedulerName:     CandidateSchedulerName,
				PriorityClassName: "high",
				NodeSelector:      map[string]string{"disk": "ssd"},
				Containers:        []corev1.Container{{Name: "app", Image: "nginx"}},
			},
		},
		{
			name: "service-account token volume",
			in: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "init", VolumeMounts: []corev1.VolumeMount{tokenMount, configMount}}},
				Containers: []corev1.Container{
					{Name: "app", VolumeMounts: []corev1.VolumeMount{dataMount, tokenMount, fakeMount}},
					{Name: "sidecar", VolumeMounts: []corev1.VolumeMount{tokenMount}},
				},
				EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
					Name: "debug", VolumeMounts: []corev1.VolumeMount{tokenMount, dataMount},
				}}},
				Volumes: []corev1.Volume{configVolume, tokenVolume, fakeVolume, dataVolume},
			},
			want: corev1.PodSpec{
				SchedulerName:  CandidateSchedulerName,
				InitContainers: []corev1.Container{{Name: "init", VolumeMounts: []corev1.VolumeMount{configMount}}},
				Containers: []corev1.Container{
					{Name: "app", VolumeMounts: []corev1.VolumeMount{dataMount, fakeMount}},
					{Name: "sidecar"},
				},
				EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
					Name: "debug", VolumeMounts: []corev1.VolumeMount{dataMount},
				}}},
				Volumes: []corev1.Volume{configVolume, fakeVolume, dataVolume},
			},
		},
		{
			name: "only the token volume",
			in: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "app", VolumeMounts: []corev1.VolumeMount{tokenMount}}},
				Volumes:    []corev1.Volume{tokenVolume},
			},
			want: corev1.PodSpec{
				SchedulerName: CandidateSchedulerName,
				Containers:    []corev1.Container{{Name: "app"}},
			},
		},
		{
			name: "user's volumes only",
			in: corev1.PodSpec{
				SchedulerName: "default-scheduler",
				Containers:    []corev1.Container{{Name: "app", VolumeMounts: []corev1.VolumeMount{configMount, fakeMount}}},
				Volumes:       []corev1.Volume{configVolume, fakeVolume},
			},
			want: corev1.PodSpec{
				SchedulerName: CandidateSchedulerName,
				Containers:    []corev1.Container{{Name: "app", VolumeMounts: []corev1.VolumeMount{configMount, fakeMount}}},
				Volumes:       []corev1.Volume{configVolume, fakeVolume},
			},
		},
		{name: "manifest", in: podSpec(), want: delegateOf()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in.DeepCopy()
			got := DelegateSpec(in)
			if diff := cmp.Diff(&tc.want, got); diff != "" {
				t.Errorf("DelegateSpec (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(&tc.in, in); diff != "" {
				t.Errorf("DelegateSpec changed its input (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestCandidatePod(t *testing.T) {
	spec := delegateOf()
	spec.SchedulerName = ""
	ch := &multiclusterv1alpha1.PodChaperon{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "web-0-abcdef01",
			Namespace: "default",
			UID:       "chaperon-uid",
			Labels:    map[string]string{"app": "web", ProxyPodUIDLabel: "uid-1"},
			Annotations: map[string]string{
				"keep":                 "me",
				ProxyPodNameAnnotation: "web-0",
				ReservationAnnotation:  "3/node-a",
				AllowedAnnotation:      "uid-1/3",
				BindingAnnotation:      "3/node-a",
			},
			ResourceVersion: "42",
			Finalizers:      []string{"example.com/keep"},
		},
		Spec: spec,
		Status: corev1.PodStatus{Conditions: []corev1.PodCondition{
			scheduledCond(corev1.ConditionTrue, "", ""),
		}},
	}
	before := ch.DeepCopy()
	yes := true
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "web-0-abcdef01",
			Namespace:   "default",
			Labels:      map[string]string{"app": "web", ProxyPodUIDLabel: "uid-1"},
			Annotations: map[string]string{"keep": "me", ProxyPodNameAnnotation: "web-0", PushedAnnotationsAnnotation: "keep"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         "multicluster.admiralty.io/v1alpha1",
				Kind:               "PodChaperon",
				Name:               "web-0-abcdef01",
				UID:                "chaperon-uid",
				Controller:         &yes,
				BlockOwnerDeletion: &yes,
			}},
		},
		Spec: delegateOf(),
	}

	got := CandidatePod(ch)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CandidatePod (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff(ch.Name, ChaperonOf(got)); diff != "" {
		t.Errorf("ChaperonOf(CandidatePod) (-want,+got):\n%s", diff)
	}

	// The candidate shares nothing with its chaperon.
	got.Labels["app"] = "changed"
	got.Annotations["keep"] = "changed"
	got.Spec.Containers[0].Image = "changed"
	got.Spec.Volumes[0].ConfigMap.Name = "changed"
	if diff := cmp.Diff(before, ch); diff != "" {
		t.Errorf("CandidatePod shares state with the chaperon (-want,+got):\n%s", diff)
	}
}

func TestChaperonOf(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		name   string
		owners []metav1.OwnerReference
		want   string
	}{
		{name: "no owner", want: ""},
		{
			name: "replica set",
			owners: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f", UID: "rs-uid", Controller: &yes, BlockOwnerDeletion: &yes,
			}},
			want: "",
		},
		{
			name: "chaperon",
			owners: []metav1.OwnerReference{{
				APIVersion: "multicluster.admiralty.io/v1alpha1", Kind: "PodChaperon", Name: "web-0-abcdef01", UID: "ch-uid", Controller: &yes,
			}},
			want: "web-0-abcdef01",
		},
		{
			name: "chaperon of another version",
			owners: []metav1.OwnerReference{{
				APIVersion: "multicluster.admiralty.io/v1beta1", Kind: "PodChaperon", Name: "web-0-abcdef01", UID: "ch-uid", Controller: &yes,
			}},
			want: "web-0-abcdef01",
		},
		{
			name: "chaperon after another owner",
			owners: []metav1.OwnerReference{
				{APIVersion: "v1", Kind: "ConfigMap", Name: "cm", UID: "cm-uid"},
				{APIVersion: "multicluster.admiralty.io/v1alpha1", Kind: "PodChaperon", Name: "web-0-abcdef01", UID: "ch-uid", Controller: &yes},
			},
			want: "web-0-abcdef01",
		},
		{
			name: "chaperon, not controller",
			owners: []metav1.OwnerReference{{
				APIVersion: "multicluster.admiralty.io/v1alpha1", Kind: "PodChaperon", Name: "web-0-abcdef01", UID: "ch-uid", Controller: &no,
			}},
			want: "",
		},
		{
			name: "chaperon, controller unset",
			owners: []metav1.OwnerReference{{
				APIVersion: "multicluster.admiralty.io/v1alpha1", Kind: "PodChaperon", Name: "web-0-abcdef01", UID: "ch-uid",
			}},
			want: "",
		},
		{
			name: "PodChaperon of another group",
			owners: []metav1.OwnerReference{{
				APIVersion: "example.com/v1", Kind: "PodChaperon", Name: "web-0-abcdef01", UID: "ch-uid", Controller: &yes,
			}},
			want: "",
		},
		{
			name: "group that merely starts with ours",
			owners: []metav1.OwnerReference{{
				APIVersion: "multicluster.admiralty.io.example.com/v1", Kind: "PodChaperon", Name: "web-0-abcdef01", UID: "ch-uid", Controller: &yes,
			}},
			want: "",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0-abcdef01", Namespace: "default", OwnerReferences: tc.owners}}
			if diff := cmp.Diff(tc.want, ChaperonOf(pod)); diff != "" {
				t.Errorf("ChaperonOf (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestOfTarget(t *testing.T) {
	cases := []struct {
		name        string
		annotations map[string]string
		target      string
		want        bool
	}{
		{name: "made through this target", annotations: map[string]string{TargetAnnotation: "team-a/eu"}, target: "team-a/eu", want: true},
		{name: "made through another target to the same cluster", annotations: map[string]string{TargetAnnotation: "eu"}, target: "team-a/eu", want: false},
		{name: "does not say", target: "eu", want: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := makeChaperon("uid-1", tc.annotations)
			if diff := cmp.Diff(tc.want, OfTarget(ch, tc.target)); diff != "" {
				t.Errorf("OfTarget (-want,+got):\n%s", diff)
			}
			if _, ok := CandidatePod(ch).Annotations[TargetAnnotation]; ok {
				t.Errorf("the candidate pod carries %s", TargetAnnotation)
			}
		})
	}
}

func TestParseDecision(t *testing.T) {
	type decision struct {
		Target   string
		Chaperon types.UID
		OK       bool
	}
	cases := []struct {
		name  string
		value *string
		want  decision
	}{
		{name: "cluster target", value: strPtr(DecisionMark("cluster-2", "ch-uid")), want: decision{"cluster-2", "ch-uid", true}},
		{name: "namespaced target", value: strPtr(DecisionMark("team-a/target-1", "ch-uid")), want: decision{"team-a/target-1", "ch-uid", true}},
		{name: "none"},
		{name: "empty", value: strPtr("")},
		{name: "no chaperon", value: strPtr("cluster-2@")},
		{name: "no target", value: strPtr("@ch-uid")},
		{name: "no separator", value: strPtr("cluster-2")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{}
			if tc.value != nil {
				pod.Annotations = map[string]string{DecisionAnnotation: *tc.value}
			}
			var got decision
			got.Target, got.Chaperon, got.OK = ParseDecision(pod)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseDecision (-want,+got):\n%s", diff)
			}
		})
	}
}

func strPtr(s string) *string { return &s }
