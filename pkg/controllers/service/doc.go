// Package service runs in a source: it makes Services that select proxy
// pods, and the Ingresses in front of them, follow the pods to the targets
// that run their delegates.
package service
