package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-io/flotilla/pkg/protocol"
)

// ErrForeign: the target has an object of that name that is not this
// source's copy (it lacks protocol.FollowerLabel with the source's ID).
var ErrForeign = errors.New("exists and was not made by this source")

// A source writes its copies (followers) into a target without being able
// to read there: it may create, update, patch and delete ConfigMaps,
// Secrets, Services and Ingresses in its namespaces, but not get them, so
// that it never sees the target's own Secrets.

// ProbeCopy reads this source's copy named like obj into obj, or reports it
// missing (NotFound) or foreign (ErrForeign). It reads nothing else: a JSON
// patch whose only operation tests the follower label changes nothing, and
// the API server answers with the object only if the test passes.
func ProbeCopy(ctx context.Context, c client.Client, obj client.Object, sourceID string) error {
	path := "/metadata/labels/" + strings.ReplaceAll(strings.ReplaceAll(protocol.FollowerLabel, "~", "~0"), "/", "~1")
	patch, err := json.Marshal([]map[string]string{{"op": "test", "path": path, "value": sourceID}})
	if err != nil {
		return err
	}
	if err := c.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		if apierrors.IsInvalid(err) || apierrors.ReasonForError(err) == metav1.StatusReasonInvalid {
			return ErrForeign
		}
		return err
	}
	return nil
}

// EnsureCopy makes the target's copy of an object be what desired says,
// given the copy as it is (nil when there is none): it creates it, or
// updates it (conditionally on the version probed) unless same says it
// already is. newObj returns an empty object of the kind, named key.
// ErrForeign means the name is taken by an object this source did not
// make, which is left alone. An update the API server refuses as Invalid
// is returned as is (e.g. an immutable field).
func EnsureCopy(ctx context.Context, c client.Client, newObj func() client.Object,
	desired func(current client.Object) client.Object, same func(current, want client.Object) bool, sourceID string) (client.Object, error) {
	for range 5 {
		current := newObj()
		err := ProbeCopy(ctx, c, current, sourceID)
		if apierrors.IsNotFound(err) {
			want := desired(nil)
			err = c.Create(ctx, want)
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			return want, nil
		}
		if err != nil {
			return nil, err
		}
		want := desired(current)
		if same(current, want) {
			return current, nil
		}
		want.SetResourceVersion(current.GetResourceVersion())
		want.SetUID(current.GetUID())
		err = c.Update(ctx, want)
		switch {
		case err == nil:
			return want, nil
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			continue
		default:
			return current, err
		}
	}
	return nil, fmt.Errorf("the copy kept changing")
}

// DeleteCopy deletes this source's copy named like obj, if there is one
// (a foreign object of that name is left alone).
func DeleteCopy(ctx context.Context, c client.Client, obj client.Object, sourceID string) error {
	if err := ProbeCopy(ctx, c, obj, sourceID); err != nil {
		if apierrors.IsNotFound(err) || errors.Is(err, ErrForeign) {
			return nil
		}
		return err
	}
	uid := obj.GetUID()
	err := c.Delete(ctx, obj, client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return err
	}
	return nil
}
