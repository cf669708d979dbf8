package localpath

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/controller/worker"
)

// Names shared with the scheduler and the kubelet, as Kubernetes spells them.
const (
	// Provisioner is the provisioner name of local-path StorageClasses.
	Provisioner = "nanokube.io/local-path"
	// ClassName is the StorageClass the controller creates.
	ClassName = "local-path"
	// DefaultBaseDir is where volumes live on the nodes unless configured otherwise.
	DefaultBaseDir = "/var/lib/nanokube/storage"

	annSelectedNode   = "volume.kubernetes.io/selected-node"
	annProvisionedBy  = "pv.kubernetes.io/provisioned-by"
	annBindCompleted  = "pv.kubernetes.io/bind-completed"
	annBoundByCtrl    = "pv.kubernetes.io/bound-by-controller"
	annStorageProv    = "volume.kubernetes.io/storage-provisioner"
	annDefaultClass   = "storageclass.kubernetes.io/is-default-class"
	reasonProvisioned = "ProvisioningSucceeded"
	reasonProvFailed  = "ProvisioningFailed"
)

// Config is what the controller is built from.
type Config struct {
	Client    kubernetes.Interface
	Informers informers.SharedInformerFactory
	Recorder  record.EventRecorder // nil: no events
	Log       *slog.Logger         // nil: discard
	// BaseDir is the directory on every node under which volumes are made; default
	// DefaultBaseDir. The kubelets must be configured with the same directory.
	BaseDir string
}

// Validate checks the configuration and fills its defaults.
func (cfg *Config) Validate() error {
	if cfg.Client == nil || cfg.Informers == nil {
		return errors.New("localpath: a client and informers are required")
	}
	if cfg.BaseDir == "" {
		cfg.BaseDir = DefaultBaseDir
	}
	if !filepath.IsAbs(cfg.BaseDir) || filepath.Clean(cfg.BaseDir) == "/" {
		return fmt.Errorf("localpath: base directory %q must be an absolute path other than /", cfg.BaseDir)
	}
	return nil
}

// Controller is the local-path provisioner.
type Controller struct {
	cfg         Config
	client      kubernetes.Interface
	claimLister corelisters.PersistentVolumeClaimLister
	pvLister    corelisters.PersistentVolumeLister
	nodeLister  corelisters.NodeLister
	classLister storagelisters.StorageClassLister
	synced      []cache.InformerSynced
	recorder    record.EventRecorder
	log         *slog.Logger
	queue       workqueue.TypedRateLimitingInterface[string]
}

// New builds the controller and registers its informer handlers.
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	claims := cfg.Informers.Core().V1().PersistentVolumeClaims()
	pvs := cfg.Informers.Core().V1().PersistentVolumes()
	nodes := cfg.Informers.Core().V1().Nodes()
	classes := cfg.Informers.Storage().V1().StorageClasses()
	c := &Controller{
		cfg: cfg, client: cfg.Client,
		claimLister: claims.Lister(), pvLister: pvs.Lister(), nodeLister: nodes.Lister(), classLister: classes.Lister(),
		synced: []cache.InformerSynced{claims.Informer().HasSynced, pvs.Informer().HasSynced,
			nodes.Informer().HasSynced, classes.Informer().HasSynced},
		recorder: cfg.Recorder, log: cfg.Log,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "localpath"}),
	}
	if c.recorder == nil {
		c.recorder = &record.FakeRecorder{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	enqueueClaim := func(obj any) {
		if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add("claim/" + k)
		}
	}
	if _, err := claims.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueClaim, UpdateFunc: func(_, cur any) { enqueueClaim(cur) },
		// A claim gone releases its volume.
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok && pvc.Spec.VolumeName != "" {
				c.queue.Add("volume/" + pvc.Spec.VolumeName)
			}
		},
	}); err != nil {
		return nil, err
	}
	enqueueVolume := func(obj any) {
		if k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add("volume/" + k)
		}
	}
	if _, err := pvs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueVolume, UpdateFunc: func(_, cur any) { enqueueVolume(cur) },
	}); err != nil {
		return nil, err
	}
	for _, inf := range []cache.SharedIndexInformer{nodes.Informer(), classes.Informer()} {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Run creates the default StorageClass if it is missing, then runs workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) {
	if err := c.ensureClass(ctx); err != nil && ctx.Err() == nil {
		// Not fatal: claims naming the class still work once someone creates it.
		c.log.ErrorContext(ctx, "creating the default StorageClass failed", "class", ClassName, "err", err)
	}
	worker.Pool{Queue: c.queue, Synced: c.synced, Sync: c.sync, Log: c.log, Name: "key"}.Run(ctx, workers)
}

// DefaultClass is the StorageClass the controller creates.
func DefaultClass() *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: ClassName, Annotations: map[string]string{annDefaultClass: "true"}},
		Provisioner:       Provisioner,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
}

func (c *Controller) ensureClass(ctx context.Context) error {
	_, err := c.client.StorageV1().StorageClasses().Get(ctx, ClassName, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		return err
	}
	_, err = c.client.StorageV1().StorageClasses().Create(ctx, DefaultClass(), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (c *Controller) sync(ctx context.Context, key string) error {
	kind, rest, _ := strings.Cut(key, "/")
	switch kind {
	case "claim":
		ns, name, err := cache.SplitMetaNamespaceKey(rest)
		if err != nil {
			return nil
		}
		return c.syncClaim(ctx, ns, name)
	case "volume":
		return c.syncVolume(ctx, rest)
	}
	return nil
}

// classOf returns the class of a claim if this controller provisions it, else nil.
func (c *Controller) classOf(pvc *corev1.PersistentVolumeClaim) *storagev1.StorageClass {
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName == "" {
		return nil
	}
	sc, err := c.classLister.Get(*pvc.Spec.StorageClassName)
	if err != nil || sc.Provisioner != Provisioner {
		return nil
	}
	return sc
}

// VolumeName is the name of the volume provisioned for a claim.
func VolumeName(pvc *corev1.PersistentVolumeClaim) string { return "pvc-" + string(pvc.UID) }

func (c *Controller) syncClaim(ctx context.Context, ns, name string) error {
	pvc, err := c.claimLister.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || pvc.DeletionTimestamp != nil {
		return err
	}
	sc := c.classOf(pvc)
	if sc == nil {
		return nil
	}
	if pvc.Spec.VolumeName != "" {
		pv, err := c.pvLister.Get(pvc.Spec.VolumeName)
		if apierrors.IsNotFound(err) {
			return nil // a claim whose volume is gone stays as it is ("Lost" is the PV binder's)
		}
		if err != nil {
			return err
		}
		return c.bind(ctx, pvc, pv)
	}
	if sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
		c.recorder.Eventf(pvc, corev1.EventTypeWarning, reasonProvFailed,
			"storageclass %q: %s volumes are node-local and need volumeBindingMode WaitForFirstConsumer", sc.Name, Provisioner)
		return nil
	}
	node := pvc.Annotations[annSelectedNode]
	if node == "" {
		return nil // waiting for the scheduler to place its first pod
	}
	pv, err := c.pvLister.Get(VolumeName(pvc))
	if apierrors.IsNotFound(err) {
		if pv, err = c.provision(ctx, pvc, sc, node); err != nil {
			c.recorder.Eventf(pvc, corev1.EventTypeWarning, reasonProvFailed, "failed to provision volume with StorageClass %q: %v", sc.Name, err)
			return err
		}
		c.recorder.Eventf(pvc, corev1.EventTypeNormal, reasonProvisioned, "Successfully provisioned volume %s on node %s", pv.Name, node)
	} else if err != nil {
		return err
	}
	return c.bind(ctx, pvc, pv)
}

// newVolume is the volume provisioned for pvc of class sc on node, whose
// kubernetes.io/hostname label is hostname.
func newVolume(pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass, baseDir, hostname string) (*corev1.PersistentVolume, error) {
	size, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		return nil, errors.New("the claim requests no storage size")
	}
	if m := pvc.Spec.VolumeMode; m != nil && *m == corev1.PersistentVolumeBlock {
		return nil, errors.New("volumeMode Block is not supported, only Filesystem")
	}
	name := VolumeName(pvc)
	reclaim := corev1.PersistentVolumeReclaimDelete
	if sc.ReclaimPolicy != nil {
		reclaim = *sc.ReclaimPolicy
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{annProvisionedBy: Provisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              sc.Name,
			VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: path.Join(baseDir, name), Type: ptr.To(corev1.HostPathDirectoryOrCreate)}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname}}},
			}}}},
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: pvc.Namespace,
				Name: pvc.Name, UID: pvc.UID},
		},
	}, nil
}

func (c *Controller) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass, node string) (*corev1.PersistentVolume, error) {
	hostname := node
	if n, err := c.nodeLister.Get(node); err == nil && n.Labels[corev1.LabelHostname] != "" {
		hostname = n.Labels[corev1.LabelHostname]
	}
	pv, err := newVolume(pvc, sc, c.cfg.BaseDir, hostname)
	if err != nil {
		return nil, err
	}
	created, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return c.client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
	}
	if err == nil {
		c.log.InfoContext(ctx, "provisioned", "volume", pv.Name, "claim", pvc.Namespace+"/"+pvc.Name, "node", node)
	}
	return created, err
}

// bind completes the binding of pvc and pv both ways; each write is skipped when done.
func (c *Controller) bind(ctx context.Context, pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) error {
	if ref := pv.Spec.ClaimRef; ref == nil || ref.UID != pvc.UID {
		return fmt.Errorf("volume %s is not reserved for claim %s/%s", pv.Name, pvc.Namespace, pvc.Name)
	}
	if pv.Status.Phase != corev1.VolumeBound {
		u := pv.DeepCopy()
		u.Status.Phase = corev1.VolumeBound
		if _, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	if pvc.Spec.VolumeName != pv.Name || pvc.Annotations[annBindCompleted] != "yes" {
		u := pvc.DeepCopy()
		u.Spec.VolumeName = pv.Name
		if u.Annotations == nil {
			u.Annotations = map[string]string{}
		}
		u.Annotations[annBindCompleted] = "yes"
		u.Annotations[annBoundByCtrl] = "yes"
		u.Annotations[annStorageProv] = Provisioner
		var err error
		if pvc, err = c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	if pvc.Status.Phase != corev1.ClaimBound {
		u := pvc.DeepCopy()
		u.Status.Phase = corev1.ClaimBound
		u.Status.AccessModes = pv.Spec.AccessModes
		u.Status.Capacity = pv.Spec.Capacity
		if _, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// syncVolume reclaims a provisioned volume whose claim is gone.
func (c *Controller) syncVolume(ctx context.Context, name string) error {
	pv, err := c.pvLister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || pv.DeletionTimestamp != nil || pv.Annotations[annProvisionedBy] != Provisioner || pv.Spec.ClaimRef == nil {
		return err
	}
	ref := pv.Spec.ClaimRef
	// Ask the API server, not the cache: a claim the cache does not have yet must not cost
	// its volume.
	pvc, err := c.client.CoreV1().PersistentVolumeClaims(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case err == nil && pvc.UID == ref.UID:
		if pv.Status.Phase != corev1.VolumeBound && pvc.Spec.VolumeName == pv.Name {
			c.queue.Add("claim/" + pvc.Namespace + "/" + pvc.Name)
		}
		return nil
	case err != nil && !apierrors.IsNotFound(err):
		return err
	}
	if pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete {
		err := c.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
		if err == nil {
			c.log.InfoContext(ctx, "deleted volume of a deleted claim", "volume", pv.Name, "claim", ref.Namespace+"/"+ref.Name)
		}
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if pv.Status.Phase != corev1.VolumeReleased {
		u := pv.DeepCopy()
		u.Status.Phase = corev1.VolumeReleased
		_, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, u, metav1.UpdateOptions{})
		return err
	}
	return nil
}
