package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/flotilla-io/flotilla/pkg/webhook"
)

// setupWebhook serves the elect webhook. With certificate rotation, the
// server is added once the rotator has written its certificate.
func setupWebhook(mgr ctrl.Manager, o options, local kubernetes.Interface) error {
	server := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: o.webhookHost, Port: o.webhookPort, CertDir: o.webhookCertDir})
	server.Register(webhook.Path, &ctrlwebhook.Admission{Handler: &webhook.Handler{Decoder: admission.NewDecoder(mgr.GetScheme())}})
	if !o.webhookCertRotation {
		return mgr.Add(server)
	}
	ns, name, ok := strings.Cut(o.webhookSecret, "/")
	if !ok || ns == "" || name == "" {
		return fmt.Errorf("--webhook-secret=%q: want namespace/name", o.webhookSecret)
	}
	if err := ensureSecret(local, ns, name); err != nil {
		return err
	}
	if o.webhookCertFromSecret {
		if err := mgr.Add(&certFileSyncer{client: local, secret: types.NamespacedName{Namespace: ns, Name: name}, dir: o.webhookCertDir}); err != nil {
			return err
		}
	}
	dnsNames := strings.Split(o.webhookDNSNames, ",")
	ready := make(chan struct{})
	if err := rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: ns, Name: name},
		CertDir:        o.webhookCertDir,
		CAName:         "flotilla-webhook-ca",
		CAOrganization: "flotilla",
		DNSName:        dnsNames[0],
		ExtraDNSNames:  dnsNames[1:],
		IsReady:        ready,
		Webhooks:       []rotator.WebhookInfo{{Name: o.webhookConfiguration, Type: rotator.Mutating}},
		// Every replica serves the webhook, so every replica needs the files.
		RequireLeaderElection: false,
	}); err != nil {
		return fmt.Errorf("adding the webhook certificate rotator: %w", err)
	}
	return mgr.Add(runnableFunc(func(ctx context.Context) error {
		select {
		case <-ready:
		case <-ctx.Done():
			return nil
		}
		if err := mgr.Add(server); err != nil {
			return fmt.Errorf("starting the webhook server: %w", err)
		}
		<-ctx.Done()
		return nil
	}))
}

// runnableFunc runs on every replica, leader or not.
type runnableFunc func(context.Context) error

func (f runnableFunc) Start(ctx context.Context) error { return f(ctx) }
func (runnableFunc) NeedLeaderElection() bool          { return false }

// certFileSyncer writes the webhook Secret's tls.crt and tls.key into the
// cert folder whenever they change: what kubelet's Secret volume does in a
// pod, for a controller-manager that runs outside one (the local sandbox).
type certFileSyncer struct {
	client kubernetes.Interface
	secret types.NamespacedName
	dir    string
}

func (s *certFileSyncer) NeedLeaderElection() bool { return false }

func (s *certFileSyncer) Start(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithNamespace(s.secret.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.secret.Name).String()
		}))
	logger := ctrl.LoggerFrom(ctx).WithName("webhook-cert-files")
	write := func(obj any) {
		secret, ok := obj.(*corev1.Secret)
		if !ok {
			return
		}
		for _, name := range []string{"tls.crt", "tls.key"} {
			data, ok := secret.Data[name]
			if !ok {
				return
			}
			if err := writeFileAtomic(filepath.Join(s.dir, name), data); err != nil {
				logger.Error(err, "Writing the webhook certificate", "file", name)
			}
		}
	}
	if _, err := factory.Core().V1().Secrets().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: write, UpdateFunc: func(_, obj any) { write(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ensureSecret creates the (empty) Secret that the rotator fills, if the
// installation did not; its namespace must exist.
func ensureSecret(client kubernetes.Interface, ns, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("getting the webhook secret %s/%s: %w", ns, name, err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels: map[string]string{"app.kubernetes.io/part-of": "flotilla"}}}
	if _, err := client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the webhook secret %s/%s (does namespace %s exist? see --webhook-secret): %w", ns, name, ns, err)
	}
	return nil
}
