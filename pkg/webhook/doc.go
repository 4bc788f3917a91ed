// Package webhook is the elect webhook: it turns a pod annotated with
// multicluster.admiralty.io/elect into a proxy pod. The pod as the user wrote
// it is saved in multicluster.admiralty.io/sourcepod-manifest (candidates and
// the delegate are made from it, with all of its scheduling constraints); the
// proxy itself keeps only cluster-level constraints, taken from
// multicluster.admiralty.io/proxy-pod-scheduling-constraints, and is made to
// land on virtual nodes only.
package webhook
