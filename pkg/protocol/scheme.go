package protocol

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

// Scheme knows the objects the protocol deals in: built-in types and
// Flotilla's API. Every client of a source or target cluster uses it.
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := multiclusterv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()
