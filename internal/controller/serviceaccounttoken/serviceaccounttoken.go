package serviceaccounttoken

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/nanokube/nanokube/internal/controller/worker"
)

// byAccount indexes token Secrets by "namespace/account name".
const byAccount = "serviceaccounttoken.byAccount"

// Signer signs legacy tokens; the API server's *satoken.Signer is one, built on the same key.
type Signer interface {
	SignLegacy(namespace, name, uid, secretName string) (string, error)
}

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	// Signer signs the tokens (required).
	Signer Signer
	// RootCA is the PEM bundle written as ca.crt (empty: no ca.crt).
	RootCA []byte
	Log    *slog.Logger // nil: discard
}

// Controller fills and deletes service-account token Secrets.
type Controller struct {
	client       kubernetes.Interface
	signer       Signer
	rootCA       []byte
	secrets      corelisters.SecretLister
	secretIndex  cache.Indexer
	accounts     corelisters.ServiceAccountLister
	secretSynced cache.InformerSynced
	saSynced     cache.InformerSynced
	queue        workqueue.TypedRateLimitingInterface[string]
	log          *slog.Logger
}

// New builds the controller and registers its informer handlers.
func New(cfg Config) (*Controller, error) {
	if cfg.Signer == nil {
		return nil, errors.New("a token signer is required")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	secretInformer := cfg.Informers.Core().V1().Secrets()
	saInformer := cfg.Informers.Core().V1().ServiceAccounts()
	if err := secretInformer.Informer().AddIndexers(cache.Indexers{byAccount: indexByAccount}); err != nil {
		return nil, err
	}
	c := &Controller{
		client: cfg.Client, signer: cfg.Signer, rootCA: cfg.RootCA,
		secrets: secretInformer.Lister(), secretIndex: secretInformer.Informer().GetIndexer(),
		accounts: saInformer.Lister(), secretSynced: secretInformer.Informer().HasSynced, saSynced: saInformer.Informer().HasSynced,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "serviceaccount_tokens_secret"}),
		log: log,
	}
	if _, err := secretInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueSecret,
		UpdateFunc: func(_, obj any) { c.enqueueSecret(obj) },
	}); err != nil {
		return nil, err
	}
	if _, err := saInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueAccountSecrets,
		UpdateFunc: func(_, obj any) { c.enqueueAccountSecrets(obj) },
		DeleteFunc: c.enqueueAccountSecrets,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func isTokenSecret(s *corev1.Secret) bool {
	return s.Type == corev1.SecretTypeServiceAccountToken && s.Annotations[corev1.ServiceAccountNameKey] != ""
}

func indexByAccount(obj any) ([]string, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok || !isTokenSecret(s) {
		return nil, nil
	}
	return []string{s.Namespace + "/" + s.Annotations[corev1.ServiceAccountNameKey]}, nil
}

func (c *Controller) enqueueSecret(obj any) {
	if s, ok := obj.(*corev1.Secret); ok && isTokenSecret(s) {
		c.queue.Add(s.Namespace + "/" + s.Name)
	}
}

// enqueueAccountSecrets queues the token Secrets of an account that appeared, changed or
// went: each sync then decides from the account's current state.
func (c *Controller) enqueueAccountSecrets(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	sa, ok := obj.(*corev1.ServiceAccount)
	if !ok {
		return
	}
	items, err := c.secretIndex.ByIndex(byAccount, sa.Namespace+"/"+sa.Name)
	if err != nil {
		c.log.Error("listing token secrets", "serviceaccount", sa.Namespace+"/"+sa.Name, "err", err)
		return
	}
	for _, item := range items {
		c.enqueueSecret(item)
	}
}

// Run runs workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	worker.Pool{Queue: c.queue, Synced: []cache.InformerSynced{c.secretSynced, c.saSynced},
		Sync: c.sync, Log: c.log, Name: "secret"}.Run(ctx, workers)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key this controller made; retrying cannot help
	}
	secret, err := c.secrets.Secrets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !isTokenSecret(secret) || secret.DeletionTimestamp != nil {
		return nil
	}
	wantUID := secret.Annotations[corev1.ServiceAccountUIDKey]
	sa, err := c.account(ctx, namespace, secret.Annotations[corev1.ServiceAccountNameKey], wantUID)
	if err != nil {
		return err
	}
	if sa == nil || (wantUID != "" && string(sa.UID) != wantUID) {
		return c.delete(ctx, secret)
	}
	return c.fill(ctx, secret, sa)
}

// account returns the account name in namespace (nil if it does not exist). The cache is
// trusted only when it agrees with the Secret: a miss or another UID may just mean the cache
// is behind a Secret created with its account, and that answer deletes the Secret.
func (c *Controller) account(ctx context.Context, namespace, name, wantUID string) (*corev1.ServiceAccount, error) {
	sa, err := c.accounts.ServiceAccounts(namespace).Get(name)
	if err == nil && (wantUID == "" || string(sa.UID) == wantUID) {
		return sa, nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	sa, err = c.client.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return sa, err
}

// delete deletes secret, but not a Secret of the same name created since (UID precondition).
func (c *Controller) delete(ctx context.Context, secret *corev1.Secret) error {
	c.log.Info("deleting token secret of a missing service account", "secret", secret.Namespace+"/"+secret.Name,
		"serviceaccount", secret.Annotations[corev1.ServiceAccountNameKey])
	err := c.client.CoreV1().Secrets(secret.Namespace).Delete(ctx, secret.Name,
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &secret.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or replaced: the replacement is synced on its own event
	}
	return err
}

// fill records the account UID and fills what the Secret lacks. A token already there is
// kept: re-signing would revoke one a client may hold.
func (c *Controller) fill(ctx context.Context, secret *corev1.Secret, sa *corev1.ServiceAccount) error {
	needUID := secret.Annotations[corev1.ServiceAccountUIDKey] != string(sa.UID)
	needToken := len(secret.Data[corev1.ServiceAccountTokenKey]) == 0
	needCA := len(c.rootCA) > 0 && !bytes.Equal(secret.Data[corev1.ServiceAccountRootCAKey], c.rootCA)
	needNamespace := string(secret.Data[corev1.ServiceAccountNamespaceKey]) != secret.Namespace
	if !needUID && !needToken && !needCA && !needNamespace {
		return nil
	}
	out := secret.DeepCopy()
	out.Annotations[corev1.ServiceAccountUIDKey] = string(sa.UID)
	if out.Data == nil {
		out.Data = map[string][]byte{}
	}
	if needToken {
		token, err := c.signer.SignLegacy(sa.Namespace, sa.Name, string(sa.UID), secret.Name)
		if err != nil {
			return fmt.Errorf("signing a token for %s/%s: %w", sa.Namespace, sa.Name, err)
		}
		out.Data[corev1.ServiceAccountTokenKey] = []byte(token)
	}
	if needCA {
		out.Data[corev1.ServiceAccountRootCAKey] = c.rootCA
	}
	out.Data[corev1.ServiceAccountNamespaceKey] = []byte(secret.Namespace)
	// A conflict (the Secret changed since the cache saw it) requeues the key; the next
	// sync sees the newer Secret, so a token written meanwhile is not overwritten.
	_, err := c.client.CoreV1().Secrets(secret.Namespace).Update(ctx, out, metav1.UpdateOptions{})
	return err
}
