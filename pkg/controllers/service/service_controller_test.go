package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
	"github.com/flotilla-io/flotilla/pkg/protocol"
	"github.com/flotilla-io/flotilla/pkg/remote"
)

const (
	namespace = "team-a"
	sourceID  = "source-kube-system-uid"
	svcName   = "web"
	// sourceIP is the web Service's cluster IP in the source.
	sourceIP = "10.0.0.5"
)

var (
	// keyEU and keyUS are ClusterTargets; keyOther is a Target of another
	// namespace than the Services'; keyDown is connected but not Ready;
	// keyGone has a virtual node but no connection.
	keyEU    = remote.Key{Name: "eu"}
	keyUS    = remote.Key{Name: "us"}
	keyOther = remote.Key{Namespace: "team-z", Name: "z"}
	keyDown  = remote.Key{Name: "down"}
	keyGone  = remote.Key{Name: "gone"}
)

// Virtual nodes, by target.
const (
	nodeEU    = "admiralty-eu"
	nodeUS    = "admiralty-us"
	nodeOther = "admiralty-team-z-z"
	nodeDown  = "admiralty-down"
	nodeGone  = "admiralty-gone"
)

// Builders.

// apiServer stands for a cluster's API server: it fills in what the API
// server defaults and allocates when it stores a Service (cluster IPs from
// ips, node ports from nodePorts).
type apiServer struct {
	ips       []string
	nodePorts int32
}

func (s *apiServer) nextIP() string {
	ip := s.ips[0]
	s.ips = s.ips[1:]
	return ip
}

// store fills in svc's spec as the API server of a single-stack IPv4 cluster
// does on create and update
// (k8s.io/kubernetes pkg/apis/core/v1/defaults.go SetDefaults_Service and
// pkg/registry/core/service/storage).
func (s *apiServer) store(svc *corev1.Service) {
	spec := &svc.Spec
	if spec.Type == "" {
		spec.Type = corev1.ServiceTypeClusterIP
	}
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	if spec.SessionAffinity == corev1.ServiceAffinityClientIP && spec.SessionAffinityConfig == nil {
		spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](10800)}}
	}
	if spec.InternalTrafficPolicy == nil {
		spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyCluster)
	}
	nodePorts := spec.Type == corev1.ServiceTypeNodePort || spec.Type == corev1.ServiceTypeLoadBalancer
	if nodePorts && spec.ExternalTrafficPolicy == "" {
		spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer && spec.AllocateLoadBalancerNodePorts == nil {
		spec.AllocateLoadBalancerNodePorts = ptr.To(true)
	}
	if spec.IPFamilyPolicy == nil {
		spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
	}
	if len(spec.IPFamilies) == 0 {
		spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	if spec.ClusterIP == "" {
		spec.ClusterIP = s.nextIP()
	}
	if len(spec.ClusterIPs) == 0 {
		spec.ClusterIPs = []string{spec.ClusterIP}
	}
	for i := range spec.Ports {
		p := &spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == (intstr.IntOrString{}) {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
		if nodePorts && p.NodePort == 0 {
			p.NodePort = s.nodePorts
			s.nodePorts++
		}
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer && spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal &&
		spec.HealthCheckNodePort == 0 {
		spec.HealthCheckNodePort = s.nodePorts
		s.nodePorts++
	}
}

// stored is svc as an API server (cluster IP ip, node ports from nodePort)
// stores it.
func stored(svc *corev1.Service, ip string, nodePort int32) *corev1.Service {
	out := svc.DeepCopy()
	(&apiServer{ips: []string{ip}, nodePorts: nodePort}).store(out)
	return out
}

// written is the web Service as the user wrote it: selecting app=web, port
// 80 to 8080.
func written() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: svcName, UID: "source-svc-uid",
			Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{
				"note":                             "kept",
				corev1.LastAppliedConfigAnnotation: `{"apiVersion":"v1","kind":"Service"}`,
			},
		},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

// sourceService is the web Service as the source stores it, changed by opts
// first.
func sourceService(opts ...func(*corev1.Service)) *corev1.Service {
	svc := written()
	for _, o := range opts {
		o(svc)
	}
	return stored(svc, sourceIP, 31000)
}

// copyMeta is the metadata of a copy of an object named name, labelled
// app=web and annotated note=kept, marked with marks.
func copyMeta(name string, refs []metav1.OwnerReference, marks ...string) metav1.ObjectMeta {
	a := map[string]string{"note": "kept"}
	for _, m := range marks {
		a[m] = "true"
	}
	return metav1.ObjectMeta{
		Namespace: namespace, Name: name,
		Labels:      map[string]string{"app": "web", protocol.FollowerLabel: sourceID},
		Annotations: a, OwnerReferences: refs,
	}
}

var serviceMarks = []string{GlobalAnnotation, CiliumGlobalAnnotation, CiliumLegacyGlobalAnnotation}

// serviceCopy is what the source sends a target for sourceService(): the
// source's spec without its addresses, selecting this source's delegates.
func serviceCopy(refs ...metav1.OwnerReference) *corev1.Service {
	spec := sourceService().Spec
	spec.ClusterIP, spec.ClusterIPs, spec.IPFamilies = "", nil, nil
	spec.Selector = map[string]string{"app": "web", protocol.SourceClusterLabel: sourceID}
	return &corev1.Service{ObjectMeta: copyMeta(svcName, refs, serviceMarks...), Spec: spec}
}

// targetIP is the first cluster IP a target allocates.
const targetIP = "10.96.0.10"

// storedCopy is serviceCopy(refs...) as a target stores it, with cluster IP
// ip.
func storedCopy(ip string, refs ...metav1.OwnerReference) *corev1.Service {
	return stored(serviceCopy(refs...), ip, 30000)
}

func backend(service string, port int32) networkingv1.IngressBackend {
	return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
		Name: service, Port: networkingv1.ServiceBackendPort{Number: port},
	}}
}

// sourceIngress is an Ingress named web: by default to Service def, and
// host example.com to each Service of paths, at /<name>.
func sourceIngress(def string, paths ...string) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: "web", UID: "source-ing-uid",
			Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{
				"note":                             "kept",
				corev1.LastAppliedConfigAnnotation: `{"apiVersion":"networking.k8s.io/v1","kind":"Ingress"}`,
			},
		},
		Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx")},
	}
	if def != "" {
		b := backend(def, 80)
		ing.Spec.DefaultBackend = &b
	}
	if len(paths) > 0 {
		http := &networkingv1.HTTPIngressRuleValue{}
		for _, p := range paths {
			http.Paths = append(http.Paths, networkingv1.HTTPIngressPath{
				Path: "/" + p, PathType: ptr.To(networkingv1.PathTypePrefix), Backend: backend(p, 80),
			})
		}
		ing.Spec.Rules = []networkingv1.IngressRule{{Host: "example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: http}}}
	}
	return ing
}

// ingressCopy is the copy of src in a target, owned by refs.
func ingressCopy(src *networkingv1.Ingress, refs ...metav1.OwnerReference) *networkingv1.Ingress {
	return &networkingv1.Ingress{ObjectMeta: copyMeta(src.Name, refs, GlobalAnnotation), Spec: *src.Spec.DeepCopy()}
}

type podOpt func(*corev1.Pod)

// proxyPod is a running proxy pod labelled app=web, bound to node.
func proxyPod(name string, uid types.UID, node string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: uid, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			SchedulerName: protocol.ProxySchedulerName, NodeName: node,
			Containers: []corev1.Container{{Name: "web", Image: "nginx"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func labelled(l map[string]string) podOpt { return func(p *corev1.Pod) { p.Labels = l } }

func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }

// virtualNode is the virtual node of target key.
func virtualNode(name string, key remote.Key) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        name,
		Labels:      map[string]string{protocol.VirtualKubeletProviderKey: protocol.VirtualKubeletProvider},
		Annotations: map[string]string{protocol.TargetAnnotation: key.String()},
	}}
}

// chaperonOf is pod's chaperon in its target.
func chaperonOf(pod *corev1.Pod, uid types.UID, opts ...func(*multiclusterv1alpha1.PodChaperon)) *multiclusterv1alpha1.PodChaperon {
	ch := &multiclusterv1alpha1.PodChaperon{ObjectMeta: metav1.ObjectMeta{
		Namespace: pod.Namespace, Name: protocol.ChaperonName(pod), UID: uid,
		Labels: map[string]string{protocol.ProxyPodUIDLabel: string(pod.UID)},
	}}
	for _, o := range opts {
		o(ch)
	}
	return ch
}

func refOf(ch *multiclusterv1alpha1.PodChaperon) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "multicluster.admiralty.io/v1alpha1", Kind: "PodChaperon", Name: ch.Name, UID: ch.UID}
}

func ownerRef(uid types.UID) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "multicluster.admiralty.io/v1alpha1", Kind: "PodChaperon", Name: "ch-" + string(uid), UID: uid}
}

// Pure functions.

func TestDesiredService(t *testing.T) {
	own := ownerRef("a")
	other := ownerRef("b")
	// current is the target's copy, as it allocated it: another cluster IP
	// and address family, node ports for 80/TCP, 53/UDP, 53/TCP and a port
	// the source no longer has.
	current := func(f func(*corev1.Service)) *corev1.Service {
		c := storedCopy("10.96.7.7", other)
		c.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		c.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
		c.Spec.ClusterIPs = []string{"10.96.7.7", "fd00::7"}
		c.Spec.Ports = []corev1.ServicePort{
			{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(53), NodePort: 30053},
			{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: 30080},
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53), NodePort: 30153},
			{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(8443), NodePort: 30443},
		}
		c.Spec.HealthCheckNodePort = 32000
		if f != nil {
			f(c)
		}
		return c
	}
	threePorts := func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports = []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
			{Name: "dns-tcp", Port: 53},
		}
	}
	copyWith := func(f func(*corev1.Service)) *corev1.Service {
		c := serviceCopy(own)
		f(c)
		return c
	}
	cases := []struct {
		name    string
		src     *corev1.Service
		current *corev1.Service
		refs    []metav1.OwnerReference
		want    *corev1.Service
	}{
		{
			name: "new copy: selects this source's delegates, addresses left to the target, marked global",
			src:  sourceService(),
			refs: []metav1.OwnerReference{own},
			want: serviceCopy(own),
		},
		{
			name: "owners as given, none",
			src:  sourceService(),
			want: serviceCopy(),
		},
		{
			name:    "owners as given, the current copy's replaced",
			src:     sourceService(),
			current: storedCopy(targetIP, other),
			refs:    []metav1.OwnerReference{own},
			want: copyWith(func(c *corev1.Service) {
				c.Spec.ClusterIP, c.Spec.ClusterIPs, c.Spec.IPFamilies = targetIP, []string{targetIP}, []corev1.IPFamily{corev1.IPv4Protocol}
			}),
		},
		{
			name: "headless: stays headless",
			src:  sourceService(func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }),
			refs: []metav1.OwnerReference{own},
			want: copyWith(func(c *corev1.Service) {
				c.Spec.ClusterIP, c.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
			}),
		},
		{
			name: "headless with a current copy: stays headless, the target's address families",
			src:  sourceService(func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }),
			current: func() *corev1.Service {
				c := serviceCopy(own)
				c.Spec.ClusterIP = corev1.ClusterIPNone
				return stored(c, "", 30000)
			}(),
			refs: []metav1.OwnerReference{own},
			want: copyWith(func(c *corev1.Service) {
				c.Spec.ClusterIP, c.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
				c.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
			}),
		},
		{
			name: "LoadBalancer, local traffic: the source's node ports and health-check node port left to the target",
			src: sourceService(func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			}),
			refs: []metav1.OwnerReference{own},
			want: copyWith(func(c *corev1.Service) {
				c.Spec.Type = corev1.ServiceTypeLoadBalancer
				c.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				c.Spec.AllocateLoadBalancerNodePorts = ptr.To(true)
			}),
		},
		{
			name:    "current copy: the target's cluster IPs, families, health-check port and node ports (by port and protocol) kept",
			src:     sourceService(threePorts),
			current: current(nil),
			refs:    []metav1.OwnerReference{own},
			want: copyWith(func(c *corev1.Service) {
				c.Spec.Type = corev1.ServiceTypeNodePort
				c.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
				c.Spec.ClusterIP, c.Spec.ClusterIPs = "10.96.7.7", []string{"10.96.7.7", "fd00::7"}
				c.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
				c.Spec.HealthCheckNodePort = 32000
				c.Spec.Ports = []corev1.ServicePort{
					{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: 30080},
					{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53), NodePort: 30153},
					{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(53), NodePort: 30053},
				}
			}),
		},
		{
			name: "the source's IP family policy wins over the current copy's",
			src:  sourceService(),
			current: current(func(c *corev1.Service) {
				c.Spec.Ports = c.Spec.Ports[1:2]
				c.Spec.Type, c.Spec.HealthCheckNodePort = corev1.ServiceTypeClusterIP, 0
			}),
			refs: []metav1.OwnerReference{own},
			want: copyWith(func(c *corev1.Service) {
				c.Spec.ClusterIP, c.Spec.ClusterIPs = "10.96.7.7", []string{"10.96.7.7", "fd00::7"}
				c.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
				c.Spec.Ports[0].NodePort = 30080
			}),
		},
		{
			name: "a source without IP family policy takes the current copy's",
			src:  func() *corev1.Service { s := sourceService(); s.Spec.IPFamilyPolicy = nil; return s }(),
			current: current(func(c *corev1.Service) {
				c.Spec.Ports = c.Spec.Ports[1:2]
				c.Spec.Ports[0].NodePort = 0
				c.Spec.Type, c.Spec.HealthCheckNodePort = corev1.ServiceTypeClusterIP, 0
			}),
			refs: []metav1.OwnerReference{own},
			want: copyWith(func(c *corev1.Service) {
				c.Spec.ClusterIP, c.Spec.ClusterIPs = "10.96.7.7", []string{"10.96.7.7", "fd00::7"}
				c.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
				c.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
			}),
		},
		{
			name: "source without labels nor annotations",
			src: func() *corev1.Service {
				s := sourceService()
				s.Labels, s.Annotations = nil, nil
				return s
			}(),
			refs: []metav1.OwnerReference{own},
			want: copyWith(func(c *corev1.Service) {
				c.Labels = map[string]string{protocol.FollowerLabel: sourceID}
				c.Annotations = map[string]string{GlobalAnnotation: "true", CiliumGlobalAnnotation: "true", CiliumLegacyGlobalAnnotation: "true"}
			}),
		},
		{
			name: "source that is itself another source's copy, marked false: labelled and marked as this source's",
			src: sourceService(func(s *corev1.Service) {
				s.Labels[protocol.FollowerLabel] = "upstream-source-id"
				s.Annotations[CiliumGlobalAnnotation] = "false"
				s.Spec.Selector[protocol.SourceClusterLabel] = "upstream-source-id"
			}),
			refs: []metav1.OwnerReference{own},
			want: serviceCopy(own),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src.DeepCopy()
			var current client.Object
			if tc.current != nil {
				current = tc.current.DeepCopy()
			}
			got := desiredService(src, sourceID, current, tc.refs)
			if diff := cmp.Diff(client.Object(tc.want), got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("desiredService() (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.src, src); diff != "" {
				t.Errorf("desiredService() changed the source (-before,+after):\n%s", diff)
			}
			if tc.current != nil {
				if diff := cmp.Diff(client.Object(tc.current), current); diff != "" {
					t.Errorf("desiredService() changed the current copy (-before,+after):\n%s", diff)
				}
			}
		})
	}
}

// TestDesiredServiceNilCurrent: EnsureCopy passes a nil interface for a
// missing copy; a typed nil pointer is the same.
func TestDesiredServiceNilCurrent(t *testing.T) {
	var none *corev1.Service
	got := desiredService(sourceService(), sourceID, none, nil)
	if diff := cmp.Diff(client.Object(serviceCopy()), got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("desiredService() (-want,+got):\n%s", diff)
	}
}

func TestDesiredIngress(t *testing.T) {
	own := ownerRef("a")
	cases := []struct {
		name string
		src  *networkingv1.Ingress
		refs []metav1.OwnerReference
		want *networkingv1.Ingress
	}{
		{
			name: "spec as is, marked global (not for Cilium), last-applied dropped",
			src:  sourceIngress("web", "web", "api"),
			refs: []metav1.OwnerReference{own},
			want: ingressCopy(sourceIngress("web", "web", "api"), own),
		},
		{
			name: "with TLS, no owners",
			src: func() *networkingv1.Ingress {
				ing := sourceIngress("web")
				ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"example.com"}, SecretName: "tls"}}
				return ing
			}(),
			want: func() *networkingv1.Ingress {
				ing := sourceIngress("web")
				ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"example.com"}, SecretName: "tls"}}
				return ingressCopy(ing)
			}(),
		},
		{
			name: "without labels nor annotations",
			src: func() *networkingv1.Ingress {
				ing := sourceIngress("web")
				ing.Labels, ing.Annotations = nil, nil
				return ing
			}(),
			refs: []metav1.OwnerReference{own},
			want: func() *networkingv1.Ingress {
				c := ingressCopy(sourceIngress("web"), own)
				c.Labels = map[string]string{protocol.FollowerLabel: sourceID}
				c.Annotations = map[string]string{GlobalAnnotation: "true"}
				return c
			}(),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src.DeepCopy()
			got := desiredIngress(src, sourceID, tc.refs)
			if diff := cmp.Diff(client.Object(tc.want), got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("desiredIngress() (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.src, src); diff != "" {
				t.Errorf("desiredIngress() changed the source (-before,+after):\n%s", diff)
			}
		})
	}
}

func TestSame(t *testing.T) {
	own := ownerRef("a")
	svc := func(f func(*corev1.Service)) client.Object {
		c := storedCopy(targetIP, own)
		if f != nil {
			f(c)
		}
		return c
	}
	ing := func(f func(*networkingv1.Ingress)) client.Object {
		c := ingressCopy(sourceIngress("web", "api"), own)
		if f != nil {
			f(c)
		}
		return c
	}
	cases := []struct {
		name          string
		current, want client.Object
		same          bool
	}{
		{name: "Service, identical", current: svc(nil), want: svc(nil), same: true},
		{
			name: "Service, what the target's API server and controllers set outside labels, annotations, owners and spec",
			current: svc(func(c *corev1.Service) {
				c.ResourceVersion, c.UID, c.Generation = "42", "target-uid", 3
				c.CreationTimestamp = metav1.Unix(1700000000, 0)
				c.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "flotilla"}}
				c.Finalizers = []string{"service.kubernetes.io/load-balancer-cleanup"}
				c.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
			}),
			want: svc(nil),
			same: true,
		},
		{
			name:    "Service, no selector vs empty selector",
			current: svc(func(c *corev1.Service) { c.Spec.Selector = nil }),
			want:    svc(func(c *corev1.Service) { c.Spec.Selector = map[string]string{} }),
			same:    true,
		},
		{name: "Service, a label differs", current: svc(func(c *corev1.Service) { c.Labels["app"] = "old" }), want: svc(nil)},
		{
			name:    "Service, follower label missing",
			current: svc(func(c *corev1.Service) { delete(c.Labels, protocol.FollowerLabel) }),
			want:    svc(nil),
		},
		{name: "Service, an annotation differs", current: svc(func(c *corev1.Service) { c.Annotations["note"] = "old" }), want: svc(nil)},
		{
			name:    "Service, a global mark missing",
			current: svc(func(c *corev1.Service) { delete(c.Annotations, CiliumLegacyGlobalAnnotation) }),
			want:    svc(nil),
		},
		{
			name:    "Service, an annotation the target added",
			current: svc(func(c *corev1.Service) { c.Annotations["added-by"] = "target" }),
			want:    svc(nil),
		},
		{name: "Service, owners differ", current: svc(func(c *corev1.Service) { c.OwnerReferences = nil }), want: svc(nil)},
		{
			name: "Service, one more owner",
			current: svc(func(c *corev1.Service) {
				c.OwnerReferences = append(c.OwnerReferences, ownerRef("b"))
			}),
			want: svc(nil),
		},
		{
			name:    "Service, selector differs",
			current: svc(func(c *corev1.Service) { delete(c.Spec.Selector, protocol.SourceClusterLabel) }),
			want:    svc(nil),
		},
		{name: "Service, port differs", current: svc(func(c *corev1.Service) { c.Spec.Ports[0].Port = 81 }), want: svc(nil)},
		{
			name:    "Service, target port differs",
			current: svc(func(c *corev1.Service) { c.Spec.Ports[0].TargetPort = intstr.FromString("http") }),
			want:    svc(nil),
		},
		{
			name:    "Service, type differs",
			current: svc(func(c *corev1.Service) { c.Spec.Type = corev1.ServiceTypeNodePort }),
			want:    svc(nil),
		},
		{
			name:    "Service, cluster IP differs",
			current: svc(func(c *corev1.Service) { c.Spec.ClusterIP, c.Spec.ClusterIPs = "10.96.0.99", []string{"10.96.0.99"} }),
			want:    svc(nil),
		},
		{
			name:    "Service, session affinity differs",
			current: svc(func(c *corev1.Service) { c.Spec.SessionAffinity = corev1.ServiceAffinityClientIP }),
			want:    svc(nil),
		},
		{
			name:    "Service, publishNotReadyAddresses differs",
			current: svc(func(c *corev1.Service) { c.Spec.PublishNotReadyAddresses = true }),
			want:    svc(nil),
		},
		{name: "Ingress, identical", current: ing(nil), want: ing(nil), same: true},
		{
			name: "Ingress, server-set metadata and status only differ",
			current: ing(func(c *networkingv1.Ingress) {
				c.ResourceVersion, c.UID, c.Generation = "7", "target-uid", 2
				c.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "203.0.113.8"}}
			}),
			want: ing(nil),
			same: true,
		},
		{name: "Ingress, a label differs", current: ing(func(c *networkingv1.Ingress) { c.Labels["app"] = "old" }), want: ing(nil)},
		{
			name:    "Ingress, global mark missing",
			current: ing(func(c *networkingv1.Ingress) { delete(c.Annotations, GlobalAnnotation) }),
			want:    ing(nil),
		},
		{name: "Ingress, owners differ", current: ing(func(c *networkingv1.Ingress) { c.OwnerReferences = nil }), want: ing(nil)},
		{
			name:    "Ingress, class differs",
			current: ing(func(c *networkingv1.Ingress) { c.Spec.IngressClassName = ptr.To("traefik") }),
			want:    ing(nil),
		},
		{
			name:    "Ingress, a rule differs",
			current: ing(func(c *networkingv1.Ingress) { c.Spec.Rules[0].Host = "old.example.com" }),
			want:    ing(nil),
		},
		{
			name: "Ingress, TLS differs",
			current: ing(func(c *networkingv1.Ingress) {
				c.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"example.com"}, SecretName: "tls"}}
			}),
			want: ing(nil),
		},
		{
			name:    "another kind: never the same",
			current: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web"}},
			want:    &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := same(tc.current, tc.want); got != tc.same {
				t.Errorf("same() = %t, want %t", got, tc.same)
			}
		})
	}
}

// TestSameAfterDefaulting: the copy a target stored (with what its API
// server defaulted and allocated) is the same as what the source wants of
// it next time, so an unchanged Service costs no update.
func TestSameAfterDefaulting(t *testing.T) {
	cases := []struct {
		name string
		// svc is the Service as the user wrote it.
		svc *corev1.Service
		// asWritten also checks a source that was not defaulted (as the
		// user wrote it): the defaults `defaulted` fills in.
		asWritten bool
	}{
		{name: "ClusterIP", svc: written(), asWritten: true},
		{
			name: "ClusterIP, several ports, one UDP, one by name",
			svc: func() *corev1.Service {
				s := written()
				s.Spec.Ports = append(s.Spec.Ports,
					corev1.ServicePort{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
					corev1.ServicePort{Name: "metrics", Port: 9090, TargetPort: intstr.FromString("metrics")})
				return s
			}(),
			asWritten: true,
		},
		{
			name: "headless",
			svc: func() *corev1.Service {
				s := written()
				s.Spec.ClusterIP = corev1.ClusterIPNone
				return s
			}(),
			asWritten: true,
		},
		{
			name: "client-IP affinity",
			svc: func() *corev1.Service {
				s := written()
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				return s
			}(),
		},
		{
			name: "NodePort, two ports",
			svc: func() *corev1.Service {
				s := written()
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "https", Port: 443})
				return s
			}(),
		},
		{
			name: "LoadBalancer, local traffic",
			svc: func() *corev1.Service {
				s := written()
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				return s
			}(),
		},
		{
			name: "source dual-stack, target single-stack",
			svc: func() *corev1.Service {
				s := written()
				s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
				s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
				s.Spec.ClusterIPs = []string{"fd00::5", sourceIP}
				s.Spec.ClusterIP = "fd00::5"
				return s
			}(),
		},
	}
	refs := []metav1.OwnerReference{ownerRef("a")}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := stored(tc.svc, sourceIP, 31000)
			created := desiredService(src, sourceID, nil, refs).(*corev1.Service)
			current := stored(created, targetIP, 30000)
			sources := map[string]*corev1.Service{"as the source stores it": src}
			if tc.asWritten {
				sources["as written"] = tc.svc
			}
			for what, s := range sources {
				want := desiredService(s, sourceID, current.DeepCopy(), refs)
				if !same(current, want) {
					t.Errorf("source %s: same(stored copy, desiredService(stored copy)) = false, want true: an update at every Reconcile; "+
						"(-current,+desired):\n%s", what, cmp.Diff(client.Object(current), want))
				}
			}
		})
	}
}

func TestBackends(t *testing.T) {
	cases := []struct {
		name string
		ing  *networkingv1.Ingress
		want []string
	}{
		{name: "none", ing: &networkingv1.Ingress{}},
		{name: "default backend", ing: sourceIngress("web"), want: []string{"web"}},
		{name: "rules", ing: sourceIngress("", "api", "web"), want: []string{"api", "web"}},
		{name: "default first, each once", ing: sourceIngress("web", "api", "web", "api"), want: []string{"web", "api"}},
		{
			name: "resource backends and rules without HTTP ignored",
			ing: func() *networkingv1.Ingress {
				ing := sourceIngress("", "api")
				bucket := networkingv1.IngressBackend{Resource: &corev1.TypedLocalObjectReference{
					APIGroup: ptr.To("k8s.example.com"), Kind: "StorageBucket", Name: "static",
				}}
				ing.Spec.DefaultBackend = &bucket
				ing.Spec.Rules[0].HTTP.Paths = append(ing.Spec.Rules[0].HTTP.Paths, networkingv1.HTTPIngressPath{
					Path: "/static", PathType: ptr.To(networkingv1.PathTypePrefix), Backend: bucket,
				})
				ing.Spec.Rules = append([]networkingv1.IngressRule{{Host: "tcp.example.com"}}, ing.Spec.Rules...)
				return ing
			}(),
			want: []string{"api"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, backends(tc.ing), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("backends() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestMergeOwners(t *testing.T) {
	a, b, c := ownerRef("a"), ownerRef("b"), ownerRef("c")
	renamed := b
	renamed.Name = "renamed"
	cases := []struct {
		name string
		a, b []metav1.OwnerReference
		want []metav1.OwnerReference
	}{
		{name: "none"},
		{name: "only a", a: []metav1.OwnerReference{c, a}, want: []metav1.OwnerReference{a, c}},
		{name: "only b", b: []metav1.OwnerReference{c, b}, want: []metav1.OwnerReference{b, c}},
		{name: "union, sorted by UID", a: []metav1.OwnerReference{c}, b: []metav1.OwnerReference{b, a}, want: []metav1.OwnerReference{a, b, c}},
		{
			name: "same UID once, as in a",
			a:    []metav1.OwnerReference{b, a},
			b:    []metav1.OwnerReference{renamed, c},
			want: []metav1.OwnerReference{a, b, c},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			beforeA, beforeB := append([]metav1.OwnerReference(nil), tc.a...), append([]metav1.OwnerReference(nil), tc.b...)
			if diff := cmp.Diff(tc.want, mergeOwners(tc.a, tc.b), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("mergeOwners() (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(beforeA, tc.a); diff != "" {
				t.Errorf("mergeOwners() changed a (-before,+after):\n%s", diff)
			}
			if diff := cmp.Diff(beforeB, tc.b); diff != "" {
				t.Errorf("mergeOwners() changed b (-before,+after):\n%s", diff)
			}
		})
	}
}

func TestFollowable(t *testing.T) {
	with := func(f func(*corev1.Service)) *corev1.Service {
		s := sourceService()
		f(s)
		return s
	}
	cases := []struct {
		name string
		svc  *corev1.Service
		want bool
	}{
		{name: "ClusterIP with selector", svc: sourceService(), want: true},
		{name: "headless with selector", svc: with(func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }), want: true},
		{name: "NodePort", svc: with(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }), want: true},
		{name: "LoadBalancer", svc: with(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer }), want: true},
		{
			name: "ExternalName, even with a selector",
			svc: with(func(s *corev1.Service) {
				s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "web.example.com"
			}),
		},
		{name: "no selector (endpoints managed by someone else)", svc: with(func(s *corev1.Service) { s.Spec.Selector = nil })},
		{name: "empty selector", svc: with(func(s *corev1.Service) { s.Spec.Selector = map[string]string{} })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := followable(tc.svc); got != tc.want {
				t.Errorf("followable() = %t, want %t", got, tc.want)
			}
		})
	}
}

// Reconcile, against fake API servers.

// env is a source (a fake API server holding Services, Ingresses, proxy pods
// and virtual nodes) and its targets (fake API servers holding chaperons and
// copies).
type env struct {
	source   client.WithWatch
	targets  map[remote.Key]client.WithWatch
	fleet    *remote.Fake
	recorder *events.FakeRecorder
	r        *Reconciler
	// api allocates each cluster's cluster IPs and node ports.
	api map[client.WithWatch]*apiServer
	// calls are the reconciler's calls to each target that write or may
	// write: "probe" for the JSON patch that only tests the follower label.
	calls map[remote.Key][]string
}

func deepCopies(objs []client.Object) []client.Object {
	out := make([]client.Object, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.DeepCopyObject().(client.Object))
	}
	return out
}

// newEnv starts a source holding copies of source, and connected targets
// holding copies of theirs; keyDown is not Ready.
func newEnv(t *testing.T, source []client.Object, targets map[remote.Key][]client.Object) *env {
	t.Helper()
	e := &env{
		source:   fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(deepCopies(source)...).Build(),
		targets:  map[remote.Key]client.WithWatch{},
		recorder: events.NewFakeRecorder(20),
		api:      map[client.WithWatch]*apiServer{},
		calls:    map[remote.Key][]string{},
		fleet: &remote.Fake{
			Clients: map[remote.Key]client.Client{},
			Healths: map[remote.Key]remote.Health{keyDown: {Ready: false, Reason: "Unreachable", Message: "no answer"}},
		},
	}
	for key, objs := range targets {
		e.addTarget(t, key, fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(deepCopies(objs)...).Build())
	}
	e.r = &Reconciler{Client: e.source, Fleet: e.fleet, SourceID: sourceID, Recorder: e.recorder}
	return e
}

// addTarget connects target key, served by c (through which the reconciler's
// calls are recorded, and Services stored as an API server stores them).
func (e *env) addTarget(t *testing.T, key remote.Key, c client.WithWatch) {
	t.Helper()
	e.targets[key] = c
	api := e.api[c]
	if api == nil {
		api = &apiServer{ips: []string{targetIP, "10.96.0.11", "10.96.0.12", "10.96.0.13"}, nodePorts: 30000}
		e.api[c] = api
	}
	record := func(verb string, obj client.Object) {
		e.calls[key] = append(e.calls[key], fmt.Sprintf("%s %s/%s", verb, kindOf(obj), obj.GetName()))
	}
	e.fleet.Clients[key] = interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			record("create", obj)
			if svc, ok := obj.(*corev1.Service); ok {
				api.store(svc)
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			record("update", obj)
			if svc, ok := obj.(*corev1.Service); ok {
				api.store(svc)
			}
			return c.Update(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			record("delete", obj)
			return c.Delete(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			verb := "patch"
			if patch.Type() == types.JSONPatchType {
				verb = "probe"
			}
			record(verb, obj)
			return remote.FakeJSONPatchError(c.Patch(ctx, obj, patch, opts...), patch)
		},
	})
	_, ctx := ktesting.NewTestContext(t)
	if _, err := e.fleet.Connect(ctx, key, nil, "test"); err != nil {
		t.Fatal(err)
	}
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *corev1.Service:
		return "Service"
	case *networkingv1.Ingress:
		return "Ingress"
	case *multiclusterv1alpha1.PodChaperon:
		return "PodChaperon"
	}
	return fmt.Sprintf("%T", obj)
}

func (e *env) reconcile(t *testing.T, kind, name string) error {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	res, err := e.r.Reconcile(ctx, request{Kind: kind, NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}})
	if !res.IsZero() {
		t.Errorf("Reconcile() = %+v, want no requeue (errors requeue)", res)
	}
	return err
}

// events are the events recorded so far, as "type reason note".
func (e *env) events() []string {
	var got []string
	for {
		select {
		case ev := <-e.recorder.Events:
			got = append(got, ev)
		default:
			return got
		}
	}
}

// get reads obj from target key, nil if it is not there; what the fake API
// server sets itself is cleared.
func get[T client.Object](t *testing.T, e *env, key remote.Key, obj T) T {
	t.Helper()
	var zero T
	if err := e.targets[key].Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		if apierrors.IsNotFound(err) {
			return zero
		}
		t.Fatal(err)
	}
	obj.SetResourceVersion("")
	obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	return obj
}

func targetService(t *testing.T, e *env, key remote.Key, name string) *corev1.Service {
	return get(t, e, key, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
}

func targetIngress(t *testing.T, e *env, key remote.Key) *networkingv1.Ingress {
	return get(t, e, key, &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "web"}})
}

func TestReconcile(t *testing.T) {
	web0 := proxyPod("web-0", "uid-0", nodeEU)
	web1 := proxyPod("web-1", "uid-1", nodeEU)
	web2 := proxyPod("web-2", "uid-2", nodeUS)
	api0 := proxyPod("api-0", "uid-api-0", nodeUS, labelled(map[string]string{"app": "api"}))
	ch0, ch1, ch2 := chaperonOf(web0, "ch-0"), chaperonOf(web1, "ch-1"), chaperonOf(web2, "ch-2")
	chAPI := chaperonOf(api0, "ch-api-0")
	// Chaperons in place for every pod; each case says which pods exist.
	chaperons := map[remote.Key][]client.Object{keyEU: {ch0, ch1}, keyUS: {ch2, chAPI}}
	nodes := []client.Object{
		virtualNode(nodeEU, keyEU), virtualNode(nodeUS, keyUS), virtualNode(nodeOther, keyOther),
		virtualNode(nodeDown, keyDown), virtualNode(nodeGone, keyGone),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}},
		// A node that names a target but is not Flotilla's virtual node.
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "impostor", Annotations: map[string]string{protocol.TargetAnnotation: "eu"}}},
	}
	apiService := func() *corev1.Service {
		s := written()
		s.Name, s.UID, s.Spec.Selector = "api", "source-api-uid", map[string]string{"app": "api"}
		return stored(s, "10.0.0.6", 31100)
	}()
	// foreignService is the target's own Service named web.
	foreignService := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: svcName, Labels: map[string]string{"team": "target"}},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "theirs"}, ClusterIP: "10.96.9.9"},
	}
	// anotherSources is another source's copy of a Service named web.
	anotherSources := storedCopy("10.96.8.8", ownerRef("theirs"))
	anotherSources.Labels[protocol.FollowerLabel] = "another-source-id"
	foreignIngress := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "web"},
		Spec:       networkingv1.IngressSpec{DefaultBackend: ptr.To(backend("theirs", 80))},
	}
	deleting := func(o client.Object) client.Object {
		o.SetDeletionTimestamp(ptr.To(metav1.Now()))
		o.SetFinalizers([]string{"example.com/hold"})
		return o
	}
	ingress := sourceIngress("web", "api")

	cases := []struct {
		name   string
		kind   string
		source []client.Object
		pods   []*corev1.Pod
		// theirs are more objects in the targets, besides chaperons.
		theirs map[remote.Key][]client.Object
		// wantServices are the web Services in eu and us (nil: none).
		wantServices map[remote.Key]*corev1.Service
		// wantIngresses are the web Ingresses in eu and us (nil: none).
		wantIngresses map[remote.Key]*networkingv1.Ingress
		wantEvents    []string
		// wantCalls, if set, are the reconciler's calls to the targets.
		wantCalls map[remote.Key][]string
	}{
		{
			name:         "copy where matching proxy pods run, owned by their chaperons; none elsewhere",
			source:       []client.Object{sourceService()},
			pods:         []*corev1.Pod{web0, web1},
			wantServices: map[remote.Key]*corev1.Service{keyEU: storedCopy(targetIP, refOf(ch0), refOf(ch1))},
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web", "create Service/web"},
				keyUS: {"probe Service/web"},
			},
		},
		{
			name:   "a copy in each target that runs matching pods",
			source: []client.Object{sourceService()},
			pods:   []*corev1.Pod{web0, web2},
			wantServices: map[remote.Key]*corev1.Service{
				keyEU: storedCopy(targetIP, refOf(ch0)), keyUS: storedCopy(targetIP, refOf(ch2)),
			},
		},
		{
			name:         "own copy where no matching pod runs any more: deleted",
			source:       []client.Object{sourceService()},
			pods:         []*corev1.Pod{web0},
			theirs:       map[remote.Key][]client.Object{keyUS: {storedCopy("10.96.1.1", refOf(ch2))}},
			wantServices: map[remote.Key]*corev1.Service{keyEU: storedCopy(targetIP, refOf(ch0))},
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web", "create Service/web"},
				keyUS: {"probe Service/web", "delete Service/web"},
			},
		},
		{
			name:   "own copy out of date: updated, the target's cluster IP kept",
			source: []client.Object{sourceService()},
			pods:   []*corev1.Pod{web0, web1},
			theirs: map[remote.Key][]client.Object{keyEU: {func() client.Object {
				c := storedCopy("10.96.1.1", refOf(ch0))
				c.Labels["app"] = "old"
				c.Spec.Ports[0].TargetPort = intstr.FromInt32(8000)
				return c
			}()}},
			wantServices: map[remote.Key]*corev1.Service{keyEU: storedCopy("10.96.1.1", refOf(ch0), refOf(ch1))},
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web", "update Service/web"},
				keyUS: {"probe Service/web"},
			},
		},
		{
			name:         "target's own Service: not overwritten, FollowerConflict",
			source:       []client.Object{sourceService()},
			pods:         []*corev1.Pod{web0},
			theirs:       map[remote.Key][]client.Object{keyEU: {foreignService}},
			wantServices: map[remote.Key]*corev1.Service{keyEU: foreignService},
			wantEvents:   []string{"Warning FollowerConflict targets eu have their own Service web, not made by Flotilla: not overwritten"},
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web"},
				keyUS: {"probe Service/web"},
			},
		},
		{
			name:         "another source's copy: not overwritten, FollowerConflict",
			source:       []client.Object{sourceService()},
			pods:         []*corev1.Pod{web0},
			theirs:       map[remote.Key][]client.Object{keyEU: {anotherSources}},
			wantServices: map[remote.Key]*corev1.Service{keyEU: anotherSources},
			wantEvents:   []string{"Warning FollowerConflict targets eu have their own Service web, not made by Flotilla: not overwritten"},
		},
		{
			name:         "target's own Service where no pod runs: not deleted, no event",
			source:       []client.Object{sourceService()},
			pods:         []*corev1.Pod{web0},
			theirs:       map[remote.Key][]client.Object{keyUS: {foreignService}},
			wantServices: map[remote.Key]*corev1.Service{keyEU: storedCopy(targetIP, refOf(ch0)), keyUS: foreignService},
		},
		{
			name:   "source Service deleted: copies deleted, others left",
			pods:   []*corev1.Pod{web0, web2},
			theirs: map[remote.Key][]client.Object{keyEU: {storedCopy("10.96.1.1", refOf(ch0))}, keyUS: {anotherSources}},
			wantServices: map[remote.Key]*corev1.Service{
				keyUS: anotherSources,
			},
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web", "delete Service/web"},
				keyUS: {"probe Service/web"},
			},
		},
		{
			name:   "source Service being deleted: copies deleted",
			source: []client.Object{deleting(sourceService())},
			pods:   []*corev1.Pod{web0},
			theirs: map[remote.Key][]client.Object{keyEU: {storedCopy("10.96.1.1", refOf(ch0))}},
		},
		{
			name:   "unbound proxy pod: no copy",
			source: []client.Object{sourceService()},
			pods:   []*corev1.Pod{proxyPod("web-0", "uid-0", "")},
		},
		{
			name:   "terminated proxy pods: no copy",
			source: []client.Object{sourceService()},
			pods:   []*corev1.Pod{proxyPod("web-0", "uid-0", nodeEU, phase(corev1.PodSucceeded)), proxyPod("web-2", "uid-2", nodeUS, phase(corev1.PodFailed))},
		},
		{
			name:   "pending proxy pod (bound, delegate starting): copy",
			source: []client.Object{sourceService()},
			pods:   []*corev1.Pod{proxyPod("web-0", "uid-0", nodeEU, phase(corev1.PodPending))},
			wantServices: map[remote.Key]*corev1.Service{
				keyEU: storedCopy(targetIP, refOf(ch0)),
			},
		},
		{
			name:   "deleting proxy pod: no copy, the existing one deleted",
			source: []client.Object{sourceService()},
			pods: []*corev1.Pod{deleting(proxyPod("web-0", "uid-0", nodeEU, func(p *corev1.Pod) {
				p.Finalizers = []string{protocol.ProxyPodFinalizer}
			})).(*corev1.Pod)},
			theirs: map[remote.Key][]client.Object{keyEU: {storedCopy("10.96.1.1", refOf(ch0))}},
		},
		{
			name:   "not a proxy pod, on a virtual node: no copy",
			source: []client.Object{sourceService()},
			pods: []*corev1.Pod{proxyPod("web-0", "uid-0", nodeEU, func(p *corev1.Pod) {
				p.Spec.SchedulerName = corev1.DefaultSchedulerName
			})},
		},
		{
			name:   "proxy pods on nodes that are not virtual, or missing: no copy",
			source: []client.Object{sourceService()},
			pods: []*corev1.Pod{
				proxyPod("web-0", "uid-0", "node-1"), proxyPod("web-1", "uid-1", "impostor"), proxyPod("web-2", "uid-2", "no-such-node"),
			},
		},
		{
			name:   "proxy pods the selector does not match, or of another namespace: no copy",
			source: []client.Object{sourceService()},
			pods: []*corev1.Pod{
				proxyPod("web-0", "uid-0", nodeEU, labelled(map[string]string{"app": "api"})),
				proxyPod("web-2", "uid-2", nodeUS, func(p *corev1.Pod) { p.Namespace = "team-b" }),
			},
		},
		{
			name:   "chaperon missing, of another proxy pod of the name, or being deleted: no copy",
			source: []client.Object{sourceService()},
			pods:   []*corev1.Pod{web0, web1, proxyPod("web-3", "uid-3", nodeEU)},
			theirs: map[remote.Key][]client.Object{keyEU: {
				// web-0's and web-1's chaperons are replaced.
				chaperonOf(web0, "ch-0", func(ch *multiclusterv1alpha1.PodChaperon) { ch.Labels[protocol.ProxyPodUIDLabel] = "older-uid" }),
				deleting(chaperonOf(web1, "ch-1")),
			}},
		},
		{
			name:   "Target of another namespace: not touched",
			source: []client.Object{sourceService()},
			pods:   []*corev1.Pod{proxyPod("web-0", "uid-0", nodeOther)},
			theirs: map[remote.Key][]client.Object{keyOther: {chaperonOf(proxyPod("web-0", "uid-0", nodeOther), "ch-z")}},
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web"},
				keyUS: {"probe Service/web"},
			},
		},
		{
			name:   "target not Ready, or not connected: not touched",
			source: []client.Object{sourceService()},
			pods:   []*corev1.Pod{proxyPod("web-0", "uid-0", nodeDown), proxyPod("web-1", "uid-1", nodeGone)},
			theirs: map[remote.Key][]client.Object{keyDown: {chaperonOf(proxyPod("web-0", "uid-0", nodeDown), "ch-d")}},
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web"},
				keyUS: {"probe Service/web"},
			},
		},
		{
			name: "ExternalName Service: not followed, own copies deleted",
			source: []client.Object{sourceService(func(s *corev1.Service) {
				s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "web.example.com"
			})},
			pods:   []*corev1.Pod{web0},
			theirs: map[remote.Key][]client.Object{keyEU: {storedCopy("10.96.1.1", refOf(ch0))}},
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web", "delete Service/web"},
				keyUS: {"probe Service/web"},
			},
		},
		{
			name:   "Service without selector: not followed",
			source: []client.Object{sourceService(func(s *corev1.Service) { s.Spec.Selector = nil })},
			pods:   []*corev1.Pod{web0},
		},
		{
			name:   "Ingress: follows to the targets of its backends, owned by their chaperons",
			kind:   kindIngress,
			source: []client.Object{sourceService(), apiService, ingress},
			pods:   []*corev1.Pod{web0, web1, web2, api0},
			wantIngresses: map[remote.Key]*networkingv1.Ingress{
				keyEU: ingressCopy(ingress, refOf(ch0), refOf(ch1)),
				keyUS: ingressCopy(ingress, refOf(ch2), refOf(chAPI)),
			},
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Ingress/web", "create Ingress/web"},
				keyUS: {"probe Ingress/web", "create Ingress/web"},
			},
		},
		{
			name:          "Ingress: a backend Service missing, the other followed",
			kind:          kindIngress,
			source:        []client.Object{apiService, ingress},
			pods:          []*corev1.Pod{web0, api0},
			wantIngresses: map[remote.Key]*networkingv1.Ingress{keyUS: ingressCopy(ingress, refOf(chAPI))},
		},
		{
			name: "Ingress whose backends are not followed: own copy deleted",
			kind: kindIngress,
			source: []client.Object{ingress, sourceService(func(s *corev1.Service) {
				s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "web.example.com"
			})},
			pods:   []*corev1.Pod{web0},
			theirs: map[remote.Key][]client.Object{keyEU: {ingressCopy(ingress, refOf(ch0))}},
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Ingress/web", "delete Ingress/web"},
				keyUS: {"probe Ingress/web"},
			},
		},
		{
			name: "Ingress with only resource backends: not followed",
			kind: kindIngress,
			source: []client.Object{sourceService(), func() client.Object {
				ing := sourceIngress("")
				ing.Spec.DefaultBackend = &networkingv1.IngressBackend{Resource: &corev1.TypedLocalObjectReference{
					APIGroup: ptr.To("k8s.example.com"), Kind: "StorageBucket", Name: "web",
				}}
				return ing
			}()},
			pods: []*corev1.Pod{web0},
		},
		{
			name:   "Ingress deleted: copies deleted",
			kind:   kindIngress,
			source: []client.Object{sourceService()},
			pods:   []*corev1.Pod{web0},
			theirs: map[remote.Key][]client.Object{keyEU: {ingressCopy(ingress, refOf(ch0))}},
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Ingress/web", "delete Ingress/web"},
				keyUS: {"probe Ingress/web"},
			},
		},
		{
			name:   "Ingress being deleted: copies deleted",
			kind:   kindIngress,
			source: []client.Object{sourceService(), deleting(sourceIngress("web"))},
			pods:   []*corev1.Pod{web0},
			theirs: map[remote.Key][]client.Object{keyEU: {ingressCopy(ingress, refOf(ch0))}},
		},
		{
			name:          "target's own Ingress: not overwritten, FollowerConflict",
			kind:          kindIngress,
			source:        []client.Object{sourceService(), ingress},
			pods:          []*corev1.Pod{web0},
			theirs:        map[remote.Key][]client.Object{keyEU: {foreignIngress}},
			wantIngresses: map[remote.Key]*networkingv1.Ingress{keyEU: foreignIngress},
			wantEvents:    []string{"Warning FollowerConflict targets eu have their own Ingress web, not made by Flotilla: not overwritten"},
		},
		{
			name:      "another kind: nothing",
			kind:      "ConfigMap",
			source:    []client.Object{sourceService()},
			pods:      []*corev1.Pod{web0},
			wantCalls: map[remote.Key][]string{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			source := append(append([]client.Object{}, nodes...), tc.source...)
			for _, p := range tc.pods {
				source = append(source, p)
			}
			targets := map[remote.Key][]client.Object{keyEU: nil, keyUS: nil, keyOther: nil, keyDown: nil}
			for key, objs := range tc.theirs {
				targets[key] = append(targets[key], objs...)
			}
			for key, objs := range chaperons {
				for _, o := range objs {
					// theirs may replace a chaperon.
					if !containsNamed(targets[key], o) {
						targets[key] = append(targets[key], o)
					}
				}
			}
			e := newEnv(t, source, targets)
			kind := tc.kind
			if kind == "" {
				kind = kindService
			}
			if err := e.reconcile(t, kind, "web"); err != nil {
				t.Errorf("Reconcile() = %v", err)
			}
			for _, key := range []remote.Key{keyEU, keyUS} {
				if diff := cmp.Diff(tc.wantServices[key], targetService(t, e, key, svcName), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("Service in %s (-want,+got):\n%s", key, diff)
				}
				if diff := cmp.Diff(tc.wantIngresses[key], targetIngress(t, e, key), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("Ingress in %s (-want,+got):\n%s", key, diff)
				}
			}
			for _, key := range []remote.Key{keyOther, keyDown} {
				if got := targetService(t, e, key, svcName); got != nil {
					t.Errorf("Service in %s = %v, want none", key, got)
				}
			}
			if diff := cmp.Diff(tc.wantEvents, e.events(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("events (-want,+got):\n%s", diff)
			}
			if tc.wantCalls != nil {
				if diff := cmp.Diff(tc.wantCalls, e.calls, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("calls to the targets (-want,+got):\n%s", diff)
				}
			}
		})
	}
}

func containsNamed(objs []client.Object, o client.Object) bool {
	for _, x := range objs {
		if kindOf(x) == kindOf(o) && x.GetName() == o.GetName() {
			return true
		}
	}
	return false
}

// TestReconcileWritesOnlyChanges: a copy follows its source and where its
// pods run; an unchanged source costs no write (only the probe of targets
// that hold a copy), and a target known to hold none is not even probed
// until it reconnects.
func TestReconcileWritesOnlyChanges(t *testing.T) {
	ctx := context.Background()
	web0 := proxyPod("web-0", "uid-0", nodeEU)
	web1 := proxyPod("web-1", "uid-1", nodeEU)
	web2 := proxyPod("web-2", "uid-2", nodeUS)
	ch0, ch1, ch2 := chaperonOf(web0, "ch-0"), chaperonOf(web1, "ch-1"), chaperonOf(web2, "ch-2")
	ingress := sourceIngress("web")
	e := newEnv(t,
		[]client.Object{virtualNode(nodeEU, keyEU), virtualNode(nodeUS, keyUS), sourceService(), ingress, web0},
		map[remote.Key][]client.Object{keyEU: {ch0}, keyUS: nil})
	relabelled := func(c *corev1.Service) *corev1.Service {
		c.Labels["tier"] = "front"
		return c
	}
	create := func(key remote.Key, objs ...client.Object) func(t *testing.T) {
		return func(t *testing.T) {
			c := e.source
			if key != (remote.Key{}) {
				c = e.targets[key]
			}
			for _, o := range deepCopies(objs) {
				if err := c.Create(ctx, o); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	steps := []struct {
		name          string
		change        func(t *testing.T)
		wantEU        *corev1.Service
		wantUS        *corev1.Service
		wantIngressEU *networkingv1.Ingress
		wantCalls     map[remote.Key][]string
	}{
		{
			name:          "first",
			wantEU:        storedCopy(targetIP, refOf(ch0)),
			wantIngressEU: ingressCopy(ingress, refOf(ch0)),
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web", "create Service/web", "probe Ingress/web", "create Ingress/web"},
				keyUS: {"probe Service/web", "probe Ingress/web"},
			},
		},
		{
			name:          "nothing changed: nothing probed",
			wantEU:        storedCopy(targetIP, refOf(ch0)),
			wantIngressEU: ingressCopy(ingress, refOf(ch0)),
			wantCalls:     map[remote.Key][]string{},
		},
		{
			name: "source Service relabelled",
			change: func(t *testing.T) {
				svc := &corev1.Service{}
				if err := e.source.Get(ctx, types.NamespacedName{Namespace: namespace, Name: svcName}, svc); err != nil {
					t.Fatal(err)
				}
				svc.Labels["tier"] = "front"
				if err := e.source.Update(ctx, svc); err != nil {
					t.Fatal(err)
				}
			},
			wantEU:        relabelled(storedCopy(targetIP, refOf(ch0))),
			wantIngressEU: ingressCopy(ingress, refOf(ch0)),
			wantCalls:     map[remote.Key][]string{keyEU: {"probe Service/web", "update Service/web"}},
		},
		{
			name:          "a second pod runs in eu: owns the copies too",
			change:        func(t *testing.T) { create(remote.Key{}, web1)(t); create(keyEU, ch1)(t) },
			wantEU:        relabelled(storedCopy(targetIP, refOf(ch0), refOf(ch1))),
			wantIngressEU: ingressCopy(ingress, refOf(ch0), refOf(ch1)),
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web", "update Service/web", "probe Ingress/web", "update Ingress/web"},
			},
		},
		{
			name:          "a pod runs in us",
			change:        func(t *testing.T) { create(remote.Key{}, web2)(t); create(keyUS, ch2)(t) },
			wantEU:        relabelled(storedCopy(targetIP, refOf(ch0), refOf(ch1))),
			wantUS:        relabelled(storedCopy(targetIP, refOf(ch2))),
			wantIngressEU: ingressCopy(ingress, refOf(ch0), refOf(ch1)),
			wantCalls: map[remote.Key][]string{
				keyUS: {"probe Service/web", "create Service/web", "probe Ingress/web", "create Ingress/web"},
			},
		},
		{
			name: "the pods leave eu",
			change: func(t *testing.T) {
				for _, p := range []*corev1.Pod{web0, web1} {
					if err := e.source.Delete(ctx, p.DeepCopy()); err != nil {
						t.Fatal(err)
					}
				}
			},
			wantUS: relabelled(storedCopy(targetIP, refOf(ch2))),
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web", "delete Service/web", "probe Ingress/web", "delete Ingress/web"},
			},
		},
		{
			name:      "nothing changed: nothing probed",
			wantUS:    relabelled(storedCopy(targetIP, refOf(ch2))),
			wantCalls: map[remote.Key][]string{},
		},
		{
			name:   "eu reconnects: probed again",
			change: func(t *testing.T) { e.r.TargetChanged(ctx, keyEU) },
			wantUS: relabelled(storedCopy(targetIP, refOf(ch2))),
			wantCalls: map[remote.Key][]string{
				keyEU: {"probe Service/web", "probe Ingress/web"},
				keyUS: {"probe Service/web", "probe Ingress/web"},
			},
		},
	}
	for _, step := range steps {
		if step.change != nil {
			step.change(t)
		}
		e.calls = map[remote.Key][]string{}
		for _, kind := range []string{kindService, kindIngress} {
			if err := e.reconcile(t, kind, "web"); err != nil {
				t.Fatalf("%s: Reconcile(%s) = %v", step.name, kind, err)
			}
		}
		if diff := cmp.Diff(step.wantEU, targetService(t, e, keyEU, svcName), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: Service in eu (-want,+got):\n%s", step.name, diff)
		}
		if diff := cmp.Diff(step.wantUS, targetService(t, e, keyUS, svcName), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: Service in us (-want,+got):\n%s", step.name, diff)
		}
		if diff := cmp.Diff(step.wantIngressEU, targetIngress(t, e, keyEU), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: Ingress in eu (-want,+got):\n%s", step.name, diff)
		}
		if diff := cmp.Diff(step.wantCalls, e.calls, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: calls to the targets (-want,+got):\n%s", step.name, diff)
		}
		if evs := e.events(); len(evs) != 0 {
			t.Errorf("%s: events = %q, want none", step.name, evs)
		}
	}
}

// TestProbeFakeClient pins what the Reconcile tests assume of the fake
// client: asAPIServer turns its failed JSON-patch "test" into the API
// server's 422, which remote.ProbeCopy reads as a foreign object.
func TestProbeFakeClient(t *testing.T) {
	ctx := context.Background()
	theirs := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: svcName}}
	c := fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(theirs).Build()
	probing := interceptor.NewClient(c, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			return remote.FakeJSONPatchError(c.Patch(ctx, obj, patch, opts...), patch)
		},
	})
	if err := remote.ProbeCopy(ctx, probing, theirs.DeepCopy(), sourceID); !errors.Is(err, remote.ErrForeign) {
		t.Errorf("ProbeCopy() = %v, want %v", err, remote.ErrForeign)
	}
	if err := remote.ProbeCopy(ctx, c, theirs.DeepCopy(), sourceID); err == nil || errors.Is(err, remote.ErrForeign) {
		t.Errorf("ProbeCopy() through the bare fake client = %v, want a non-API error (else drop asAPIServer)", err)
	}
}

// orderedFleet lists its targets in a given order (a real fleet's order is
// a map's).
type orderedFleet struct {
	*remote.Fake
	keys []remote.Key
}

func (f orderedFleet) Keys() []remote.Key { return f.keys }

// Two Targets of a source may lead to the same cluster (here the
// ClusterTarget eu and the Target team-a/eu, both to one API server): the
// copy is made per cluster, with the owners wanted through either, so the
// Target that runs no pod does not delete the copy the other one needs,
// whatever the order of Fleet.Keys() and across reconnections.
func TestTwoTargetsToOneClusterShareTheCopy(t *testing.T) {
	keyTeamEU := remote.Key{Namespace: namespace, Name: "eu"}
	const nodeTeamEU = "admiralty-team-a-eu"
	web0 := proxyPod("web-0", "uid-0", nodeEU)
	ch0 := chaperonOf(web0, "ch-0", func(ch *multiclusterv1alpha1.PodChaperon) {
		ch.Annotations = map[string]string{protocol.TargetAnnotation: keyEU.String()}
	})
	cases := []struct {
		name  string
		order []remote.Key
		// reconnects are the targets that reconnect after each Reconcile.
		reconnects []remote.Key
	}{
		{name: "ClusterTarget listed first", order: []remote.Key{keyEU, keyTeamEU}},
		{name: "Target listed first, then it reconnects", order: []remote.Key{keyTeamEU, keyEU}, reconnects: []remote.Key{keyTeamEU}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			e := newEnv(t, []client.Object{
				virtualNode(nodeEU, keyEU), virtualNode(nodeTeamEU, keyTeamEU), sourceService(), web0,
			}, nil)
			cluster := fake.NewClientBuilder().WithScheme(protocol.Scheme).WithObjects(ch0.DeepCopy()).Build()
			e.addTarget(t, keyEU, cluster)
			e.addTarget(t, keyTeamEU, cluster)
			e.fleet.Configs = map[remote.Key]*rest.Config{keyEU: {Host: "https://eu.example"}, keyTeamEU: {Host: "https://eu.example"}}
			e.r.Fleet = orderedFleet{Fake: e.fleet, keys: tc.order}
			for i := range 2 {
				if err := e.reconcile(t, kindService, svcName); err != nil {
					t.Fatalf("Reconcile #%d = %v", i+1, err)
				}
				if diff := cmp.Diff(storedCopy(targetIP, refOf(ch0)), targetService(t, e, keyEU, svcName), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("after Reconcile #%d: Service in the cluster (-want,+got):\n%s", i+1, diff)
				}
				for _, key := range tc.reconnects {
					e.r.TargetChanged(ctx, key)
				}
			}
			for key, calls := range e.calls {
				for _, c := range calls {
					if strings.HasPrefix(c, "delete ") {
						t.Errorf("through %s: %s, want the copy kept: a pod runs in this cluster", key, c)
					}
				}
			}
		})
	}
}
