package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

// Keys on PodChaperons and the candidate pods made of them.
const (
	// ProxyPodUIDLabel names the proxy pod a chaperon (and its candidate pod)
	// stands for. It is the first half of the fence: an allow mark counts
	// only if it names the same UID.
	ProxyPodUIDLabel = "multicluster.admiralty.io/proxy-pod-uid"
	// ProxyPodNameAnnotation is the proxy pod's name (the chaperon lives in
	// the namespace of the same name as the proxy pod's).
	ProxyPodNameAnnotation = "multicluster.admiralty.io/proxy-pod-name"

	// ReservationAnnotation is written by the candidate scheduler:
	// "<attempt>/<node>" while its candidate holds a reservation on node,
	// "<attempt>/" once that reservation is released. Attempts only grow.
	ReservationAnnotation = "multicluster.admiralty.io/reservation"
	// AllowedAnnotation is written by the proxy scheduler on the one chaperon
	// it chose: "<proxy pod UID>/<attempt>" allows reservation <attempt>.
	AllowedAnnotation = "multicluster.admiralty.io/allowed"
	// BindingAnnotation is written by the candidate scheduler, by an update
	// conditional on the resourceVersion that carried a current allow mark,
	// just before it binds: "<attempt>/<node>". Once it is set the proxy
	// can no longer revoke its choice; it adopts it.
	BindingAnnotation = "multicluster.admiralty.io/binding"
	// DecisionAnnotation is the proxy scheduler's record, on the proxy pod
	// in the source, of the chaperon it chose: "<target>@<chaperon UID>".
	// It is written before the allow mark, so a proxy scheduler that
	// restarts (or reconnects to a target) knows where a pod may be allowed
	// without having to see every target first: a pod whose record names a
	// target whose chaperons are not known yet waits for them rather than
	// going elsewhere, which could give it two delegates.
	DecisionAnnotation = "multicluster.admiralty.io/decision"
	// DeletionGracePeriodAnnotation is written by the source on a chaperon
	// it is about to delete (foreground): the grace period, in seconds, of
	// the proxy pod's deletion, which the target gives the delegate.
	DeletionGracePeriodAnnotation = "multicluster.admiralty.io/deletion-grace-period-seconds"
)

// DecisionMark is the value of DecisionAnnotation.
func DecisionMark(target string, chaperon types.UID) string {
	return target + "@" + string(chaperon)
}

// ParseDecision reads DecisionAnnotation: the chosen target and chaperon.
func ParseDecision(pod *corev1.Pod) (target string, chaperon types.UID, ok bool) {
	t, uid, found := strings.Cut(pod.Annotations[DecisionAnnotation], "@")
	if !found || t == "" || uid == "" {
		return "", "", false
	}
	return t, types.UID(uid), true
}

// DeletionGracePeriod is the grace period a source asked for the deletion
// of ch's pod (nil: the pod's own).
func DeletionGracePeriod(ch *multiclusterv1alpha1.PodChaperon) *int64 {
	v, ok := ch.Annotations[DeletionGracePeriodAnnotation]
	if !ok {
		return nil
	}
	g, err := strconv.ParseInt(v, 10, 64)
	if err != nil || g < 0 {
		return nil
	}
	return &g
}

// State is where a chaperon is in the protocol:
// Pending → Reserved | Unschedulable → (allowed) Binding → Bound.
// A chaperon is released by deleting it, which deletes its candidate.
type State string

// The chaperon states.
const (
	// StatePending: no verdict yet from the target.
	StatePending State = "Pending"
	// StateReserved: the candidate holds a reservation on a real node and
	// waits for the proxy's decision.
	StateReserved State = "Reserved"
	// StateUnschedulable: the target's scheduler found no node; Message says why.
	StateUnschedulable State = "Unschedulable"
	// StateBinding: the candidate was allowed and committed to bind.
	StateBinding State = "Binding"
	// StateBound: the candidate is bound, it is the delegate pod.
	StateBound State = "Bound"
)

// ReasonDelegateDeleted is the reason of a chaperon's (and then its proxy
// pod's) Failed status when its delegate pod was deleted in the target: it
// is never made again, and the source deletes the proxy pod so that its
// owner makes a new one.
const ReasonDelegateDeleted = "DelegateDeleted"

// Verdict is what a chaperon says about its target.
type Verdict struct {
	State State
	// Attempt is the reservation attempt the verdict is about (Reserved,
	// Binding, Bound).
	Attempt int64
	// Node is the real node reserved or bound.
	Node string
	// Message is the target scheduler's reason (Unschedulable).
	Message string
}

// VerdictOf reads a chaperon's state.
func VerdictOf(ch *multiclusterv1alpha1.PodChaperon) Verdict {
	binding, bok := parseAttemptNode(ch.Annotations[BindingAnnotation])
	scheduled := podCondition(&ch.Status, corev1.PodScheduled)
	if scheduled != nil && scheduled.Status == corev1.ConditionTrue {
		return Verdict{State: StateBound, Attempt: binding.attempt, Node: binding.node}
	}
	if bok {
		return Verdict{State: StateBinding, Attempt: binding.attempt, Node: binding.node}
	}
	if r, ok := parseAttemptNode(ch.Annotations[ReservationAnnotation]); ok && r.node != "" {
		return Verdict{State: StateReserved, Attempt: r.attempt, Node: r.node}
	}
	if scheduled != nil && scheduled.Status == corev1.ConditionFalse && scheduled.Reason == corev1.PodReasonUnschedulable {
		return Verdict{State: StateUnschedulable, Message: scheduled.Message}
	}
	return Verdict{State: StatePending}
}

// Decided reports whether the proxy's choice fell on this chaperon: it is
// allowed, binding or bound. A proxy pod has at most one decided chaperon.
func Decided(ch *multiclusterv1alpha1.PodChaperon) bool {
	if _, ok := ch.Annotations[AllowedAnnotation]; ok {
		return true
	}
	s := VerdictOf(ch).State
	return s == StateBinding || s == StateBound
}

// ReservationMark is the value of ReservationAnnotation; node "" marks the
// reservation released.
func ReservationMark(attempt int64, node string) string {
	return strconv.FormatInt(attempt, 10) + "/" + node
}

// LastAttempt is the latest reservation attempt recorded on the chaperon
// (0 for none).
func LastAttempt(ch *multiclusterv1alpha1.PodChaperon) int64 {
	var last int64
	for _, key := range []string{ReservationAnnotation, BindingAnnotation} {
		if r, ok := parseAttemptNode(ch.Annotations[key]); ok && r.attempt > last {
			last = r.attempt
		}
	}
	return last
}

// AllowMark is the value of AllowedAnnotation allowing reservation attempt
// of the chaperon of proxy pod uid.
func AllowMark(uid types.UID, attempt int64) string {
	return string(uid) + "/" + strconv.FormatInt(attempt, 10)
}

// Allows is the fencing rule: the candidate of ch may bind under its
// reservation attempt only if ch's allow mark names ch's own proxy pod UID
// and that very attempt. A mark for an older attempt, or copied from
// another chaperon, allows nothing; except that once the chaperon has
// committed to bind (BindingAnnotation), which the proxy can no longer
// revoke, a later attempt (e.g. of a restarted candidate scheduler) may
// bind under an allow mark of the right UID.
func Allows(ch *multiclusterv1alpha1.PodChaperon, attempt int64) bool {
	uid := ch.Labels[ProxyPodUIDLabel]
	if uid == "" {
		return false
	}
	mark := ch.Annotations[AllowedAnnotation]
	if mark == AllowMark(types.UID(uid), attempt) {
		return true
	}
	committed, ok := parseAttemptNode(ch.Annotations[BindingAnnotation])
	markUID, markAttempt, _ := strings.Cut(mark, "/")
	return ok && markUID == uid && markAttempt != "" && attempt >= committed.attempt
}

// BindingMark is the value of BindingAnnotation.
func BindingMark(attempt int64, node string) string { return ReservationMark(attempt, node) }

type attemptNode struct {
	attempt int64
	node    string
}

func parseAttemptNode(v string) (attemptNode, bool) {
	a, node, ok := strings.Cut(v, "/")
	if !ok {
		return attemptNode{}, false
	}
	n, err := strconv.ParseInt(a, 10, 64)
	if err != nil || n <= 0 {
		return attemptNode{}, false
	}
	return attemptNode{attempt: n, node: node}, true
}

func podCondition(s *corev1.PodStatus, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			return &s.Conditions[i]
		}
	}
	return nil
}

// ChaperonName is the name of a proxy pod's chaperons (and candidate pods):
// the proxy pod's name and a hash of its UID, so that a pod recreated under
// the same name never meets its predecessor's chaperons, and a restarted
// proxy scheduler finds (AlreadyExists) instead of duplicating.
func ChaperonName(proxy *corev1.Pod) string {
	sum := sha256.Sum256([]byte(proxy.UID))
	suffix := "-" + hex.EncodeToString(sum[:4])
	name := proxy.Name
	// Pod names are DNS subdomains (253); keep the hostname part readable.
	if max := 253 - len(suffix); len(name) > max {
		name = strings.TrimRight(name[:max], "-.")
	}
	return name + suffix
}

// keys that stay in the source: they describe the proxy, not the delegate.
var sourceOnlyAnnotations = []string{
	ElectAnnotation, SourcePodManifestAnnotation, ProxyPodSchedulingConstraintsAnnotation, DecisionAnnotation,
	"kubectl.kubernetes.io/last-applied-configuration",
}

// protocolMarks are written on chaperons by the schedulers (and, with
// TargetAnnotation, by the source: the Target or ClusterTarget, as
// "<namespace>/<name>" or "<name>", through which the chaperon was made) and
// never copied to pods.
var protocolMarks = []string{ReservationAnnotation, AllowedAnnotation, BindingAnnotation, TargetAnnotation, FollowedAnnotation,
	FollowConflictAnnotation, DeletionGracePeriodAnnotation}

// ChaperonTarget is the source's target (key string) that made ch, "" if
// it does not say. Two Targets of one source may lead to the same cluster:
// a chaperon belongs to the one that made it.
func ChaperonTarget(ch *multiclusterv1alpha1.PodChaperon) string {
	return ch.Annotations[TargetAnnotation]
}

// OfTarget reports whether ch belongs to the target named target (or does
// not say).
func OfTarget(ch *multiclusterv1alpha1.PodChaperon, target string) bool {
	t := ChaperonTarget(ch)
	return t == "" || t == target
}

// NewChaperon is the chaperon of proxy pod in a target: the pod as the user
// wrote it (see SourceManifest) with its delegate spec (see DelegateSpec).
func NewChaperon(proxy *corev1.Pod) (*multiclusterv1alpha1.PodChaperon, error) {
	manifest, err := SourceManifest(proxy)
	if err != nil {
		return nil, err
	}
	ch := &multiclusterv1alpha1.PodChaperon{}
	ch.Name = ChaperonName(proxy)
	ch.Namespace = proxy.Namespace
	ch.Labels = map[string]string{}
	for k, v := range manifest.Labels {
		ch.Labels[k] = v
	}
	ch.Labels[ProxyPodUIDLabel] = string(proxy.UID)
	ch.Annotations = map[string]string{}
	for k, v := range manifest.Annotations {
		ch.Annotations[k] = v
	}
	for _, k := range append(sourceOnlyAnnotations, protocolMarks...) {
		delete(ch.Annotations, k)
	}
	ch.Annotations[ProxyPodNameAnnotation] = proxy.Name
	ch.Spec = *DelegateSpec(&manifest.Spec)
	return ch, nil
}

// SourceManifest is the pod as the user wrote it: the manifest the elect
// webhook saved, or, for a pod that set schedulerName admiralty-proxy
// itself, the pod.
func SourceManifest(proxy *corev1.Pod) (*corev1.Pod, error) {
	raw, ok := proxy.Annotations[SourcePodManifestAnnotation]
	if !ok {
		return proxy.DeepCopy(), nil
	}
	var manifest corev1.Pod
	if err := json.Unmarshal([]byte(raw), &manifest); err != nil {
		return nil, fmt.Errorf("annotation %s of pod %s/%s: %w", SourcePodManifestAnnotation, proxy.Namespace, proxy.Name, err)
	}
	return &manifest, nil
}

// serviceAccountVolumePrefix names the projected token volume that the
// ServiceAccount admission plugin adds; the target's admission adds its own.
const serviceAccountVolumePrefix = "kube-api-access-"

// DelegateSpec derives the delegate's spec from the user's: scheduled by
// the candidate scheduler, no node, no scheduling gates, the source's
// service-account token volume left out (the target mounts its own), and
// the resolved priority and runtime overhead left out (the target resolves
// priorityClassName and runtimeClassName itself).
func DelegateSpec(in *corev1.PodSpec) *corev1.PodSpec {
	spec := in.DeepCopy()
	spec.SchedulerName = CandidateSchedulerName
	spec.NodeName = ""
	spec.SchedulingGates = nil
	spec.Priority = nil
	spec.PreemptionPolicy = nil
	// The target's RuntimeClass admission sets the overhead of its own class.
	spec.Overhead = nil
	dropped := map[string]bool{}
	volumes := spec.Volumes[:0]
	for _, v := range spec.Volumes {
		if strings.HasPrefix(v.Name, serviceAccountVolumePrefix) && v.Projected != nil {
			dropped[v.Name] = true
			continue
		}
		volumes = append(volumes, v)
	}
	spec.Volumes = volumes
	if len(spec.Volumes) == 0 {
		spec.Volumes = nil
	}
	dropMounts := func(mounts []corev1.VolumeMount) []corev1.VolumeMount {
		var out []corev1.VolumeMount
		for _, m := range mounts {
			if !dropped[m.Name] {
				out = append(out, m)
			}
		}
		return out
	}
	for i := range spec.InitContainers {
		spec.InitContainers[i].VolumeMounts = dropMounts(spec.InitContainers[i].VolumeMounts)
	}
	for i := range spec.Containers {
		spec.Containers[i].VolumeMounts = dropMounts(spec.Containers[i].VolumeMounts)
	}
	for i := range spec.EphemeralContainers {
		spec.EphemeralContainers[i].VolumeMounts = dropMounts(spec.EphemeralContainers[i].VolumeMounts)
	}
	return spec
}

// CandidatePod is the pod a target makes of a chaperon: its name,
// namespace, labels and spec; its annotations without the protocol's
// marks (and the list of those that came down, see
// PushedAnnotationsAnnotation); owned (as controller) by the chaperon.
func CandidatePod(ch *multiclusterv1alpha1.PodChaperon) *corev1.Pod {
	pod := &corev1.Pod{}
	pod.Name = ch.Name
	pod.Namespace = ch.Namespace
	pod.Labels = map[string]string{}
	for k, v := range ch.Labels {
		pod.Labels[k] = v
	}
	pod.Annotations = map[string]string{}
	pushed := map[string]bool{}
	for k, v := range ch.Annotations {
		if flows(k) {
			pod.Annotations[k] = v
			pushed[k] = true
		}
	}
	if len(pushed) > 0 {
		pod.Annotations[PushedAnnotationsAnnotation] = joinKeys(pushed)
	}
	pod.Annotations[ProxyPodNameAnnotation] = ch.Annotations[ProxyPodNameAnnotation]
	yes := true
	pod.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: multiclusterv1alpha1.GroupVersion.String(), Kind: "PodChaperon",
		Name: ch.Name, UID: ch.UID, Controller: &yes, BlockOwnerDeletion: &yes,
	}}
	pod.Spec = *ch.Spec.DeepCopy()
	pod.Spec.SchedulerName = CandidateSchedulerName
	return pod
}

// ChaperonOf is the name of the chaperon that owns a candidate pod, or "".
func ChaperonOf(pod *corev1.Pod) string {
	for _, ref := range pod.OwnerReferences {
		if ref.Controller != nil && *ref.Controller && ref.Kind == "PodChaperon" &&
			strings.HasPrefix(ref.APIVersion, multiclusterv1alpha1.GroupVersion.Group+"/") {
			return ref.Name
		}
	}
	return ""
}
