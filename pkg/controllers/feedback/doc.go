// Package feedback runs in source clusters: it copies each bound proxy
// pod's delegate status (reported by its PodChaperon in the target) to the
// proxy pod, so that owners (Deployments, Jobs) see their pods run and end;
// and it deletes a deleted proxy pod's chaperons, and through them its
// candidates or delegate, in every target before releasing its finalizer.
package feedback
