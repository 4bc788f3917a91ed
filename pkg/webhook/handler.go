package webhook

import (
	"context"
	"encoding/json"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Path is where the elect webhook is served.
const Path = "/mutate-v1-pod"

// ConfigurationName is the MutatingWebhookConfiguration's name; its CA
// bundle is kept up to date by the certificate rotator.
const ConfigurationName = "flotilla-elect"

// +kubebuilder:webhook:path=/mutate-v1-pod,mutating=true,failurePolicy=fail,sideEffects=None,groups="",resources=pods,verbs=create,versions=v1,name=elect.multicluster.admiralty.io,admissionReviewVersions=v1,reinvocationPolicy=IfNeeded,timeoutSeconds=5

// The certificate rotator keeps the webhook's Secret and CA bundle.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;list;watch;update;patch

// Handler admits pod creations: elected pods become proxy pods, others pass
// untouched. Malformed annotations are denied with a message that names them.
type Handler struct {
	Decoder admission.Decoder
}

// Handle mutates one pod.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	pod := &corev1.Pod{}
	if err := h.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if !Elected(pod) || IsProxy(pod) {
		return admission.Allowed("")
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	if err := MutateToProxy(pod); err != nil {
		return admission.Denied(err.Error())
	}
	mutated, err := json.Marshal(pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	ctrl.LoggerFrom(ctx).V(4).Info("Elected pod becomes a proxy pod", "namespace", req.Namespace, "name", pod.Name, "generateName", pod.GenerateName)
	return admission.PatchResponseFromRaw(req.Object.Raw, mutated)
}
