// Package controllers holds the controller-manager's controllers, one
// reconciler per package (see README.md). The markers below are what the
// manager itself needs besides its controllers: its metrics endpoint
// authenticates and authorizes scrapers against the API server, and leader
// election records Events.
package controllers

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
