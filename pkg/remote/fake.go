package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	multiclusterv1alpha1 "github.com/flotilla-io/flotilla/pkg/apis/multicluster/v1alpha1"
)

// Fake is a Connector for unit tests: it records what is connected and
// serves each target from a client the test gives (e.g. a fake client).
type Fake struct {
	mu sync.Mutex
	// Clients serve the targets, by key; a missing one connects with a nil client.
	Clients map[Key]client.Client
	// Readers answer GetAPIReader, by key; the key's client by default
	// (one different from the client stands for a cache that lags).
	Readers map[Key]client.Reader
	// Healths are reported by the connections, by key; Ready by default.
	Healths map[Key]Health
	// Connected holds each connected key's fingerprint.
	Connected map[Key]string
	// Connects counts Connect calls that made a new connection.
	Connects int
	// Configs are the targets' client configurations, by key.
	Configs map[Key]*rest.Config
	// Summaries are the targets' ClusterSummaries, by key.
	Summaries map[Key]*multiclusterv1alpha1.ClusterSummary
}

func (f *FakeCluster) Summary() *multiclusterv1alpha1.ClusterSummary {
	f.fake.mu.Lock()
	defer f.fake.mu.Unlock()
	return f.fake.Summaries[f.key].DeepCopy()
}

var _ Connector = &Fake{}

// FakeCluster is a connection of a Fake.
type FakeCluster struct {
	key    Key
	fake   *Fake
	client client.Client
}

func (f *FakeCluster) Key() Key                 { return f.key }
func (f *FakeCluster) GetClient() client.Client { return f.client }
func (f *FakeCluster) GetCache() cache.Cache    { return nil }
func (f *FakeCluster) GetAPIReader() client.Reader {
	f.fake.mu.Lock()
	defer f.fake.mu.Unlock()
	if r, ok := f.fake.Readers[f.key]; ok {
		return r
	}
	return f.client
}
func (f *FakeCluster) GetConfig() *rest.Config {
	f.fake.mu.Lock()
	defer f.fake.mu.Unlock()
	if cfg, ok := f.fake.Configs[f.key]; ok {
		return rest.CopyConfig(cfg)
	}
	return &rest.Config{Host: "https://" + f.key.String() + ".invalid"}
}
func (f *FakeCluster) Health() Health {
	f.fake.mu.Lock()
	defer f.fake.mu.Unlock()
	if h, ok := f.fake.Healths[f.key]; ok {
		return h
	}
	return Health{Ready: true, Reason: "Connected", Message: "connected (fake)"}
}

func (f *Fake) Connect(_ context.Context, key Key, _ *rest.Config, fingerprint string) (Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Connected == nil {
		f.Connected = map[Key]string{}
	}
	if f.Connected[key] != fingerprint {
		f.Connects++
	}
	f.Connected[key] = fingerprint
	return &FakeCluster{key: key, fake: f, client: f.Clients[key]}, nil
}

func (f *Fake) Disconnect(key Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.Connected, key)
}

func (f *Fake) Get(key Key) (Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.Connected[key]; !ok {
		return nil, fmt.Errorf("%s: %w", key, ErrClusterNotConnected)
	}
	return &FakeCluster{key: key, fake: f, client: f.Clients[key]}, nil
}

func (f *Fake) Keys() []Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]Key, 0, len(f.Connected))
	for k := range f.Connected {
		keys = append(keys, k)
	}
	return keys
}

// FakeJSONPatchError answers, for a controller-runtime fake client, a JSON
// patch that does not apply (a failed "test" operation, as ProbeCopy sends)
// as the API server does: 422 Invalid (k8s.io/apiserver's patch handler).
// The fake client applies JSON patches with the same library but returns
// its error as is. Wrap a fake client's Patch with it in unit tests.
func FakeJSONPatchError(err error, patch client.Patch) error {
	var status apierrors.APIStatus
	if err == nil || patch.Type() != types.JSONPatchType || errors.As(err, &status) {
		return err
	}
	return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
}
