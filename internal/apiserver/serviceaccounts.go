package apiserver

import (
	"context"
	"crypto"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/satoken"
	"github.com/nanokube/nanokube/internal/pki"
)

// Service-account tokens, as kube-apiserver issues and checks them: the TokenRequest
// subresource (serviceaccounts/token) signs a JWT for an account, optionally bound to a pod,
// secret or node; the authenticator accepts such a token only while the account and the bound
// object still exist with the UIDs in the token, so deleting the pod revokes it; TokenReview
// answers the same question for other servers; and ServiceAccount admission projects a token,
// the cluster CA and the namespace into every pod that does not opt out.

var (
	serviceAccountsGVR = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	nodesGVR           = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
)

const (
	// minTokenExpiration and maxTokenExpiration bound spec.expirationSeconds, as in Kubernetes.
	minTokenExpiration = 10 * time.Minute
	maxTokenExpiration = math.MaxUint32 * time.Second
	// defaultTokenExpiration is what a TokenRequest without expirationSeconds gets.
	defaultTokenExpiration = time.Hour
)

// newServiceAccountTokens sets up the signer and verifier from the configuration.
func (s *Server) newServiceAccountTokens() error {
	s.apiAudiences = s.cfg.APIAudiences
	if k := s.cfg.ServiceAccountSigningKey; k != nil {
		signer, err := satoken.NewSigner(s.cfg.ServiceAccountIssuer, k)
		if err != nil {
			return err
		}
		s.saSigner = signer
	}
	keys := s.serviceAccountPublicKeys()
	if len(keys) == 0 {
		return nil
	}
	v, err := satoken.NewVerifier([]string{s.cfg.ServiceAccountIssuer}, keys)
	if err != nil {
		return err
	}
	// Legacy Secret-based tokens name no audience: like static tokens they count for this
	// server's own audiences only.
	v.AcceptLegacy(s.apiAudiences)
	s.saVerifier = v
	return nil
}

// serviceAccountPublicKeys are the keys that verify service-account tokens, and that OIDC
// discovery publishes: the further keys configured, then the signing key's public half.
func (s *Server) serviceAccountPublicKeys() []crypto.PublicKey {
	keys := slices.Clone(s.cfg.ServiceAccountKeys)
	if k := s.cfg.ServiceAccountSigningKey; k != nil {
		keys = append(keys, k.Public())
	}
	return keys
}

// serveToken answers POST …/serviceaccounts/<name>/token.
func (s *Server) serveToken(ctx context.Context, w http.ResponseWriter, r *http.Request, req request) (runtime.Object, error) {
	gr := schema.GroupResource{Resource: "serviceaccounts/token"}
	if req.verb != "create" {
		return nil, apierrors.NewMethodNotSupported(gr, req.verb)
	}
	if s.saSigner == nil {
		return nil, apierrors.NewMethodNotSupported(gr, req.verb)
	}
	data, err := readBody(r)
	if err != nil {
		return nil, err
	}
	obj, err := s.decodeObject(w, r, data, authenticationv1.SchemeGroupVersion.WithKind("TokenRequest"))
	if err != nil {
		return nil, err
	}
	tr, ok := obj.(*authenticationv1.TokenRequest)
	if !ok {
		return nil, badRequest("a TokenRequest is expected, not %T", obj)
	}
	if err := s.admitNodeTokenRequest(ctx, req.namespace, req.name, tr); err != nil {
		return nil, err
	}
	return s.issueToken(ctx, req.namespace, req.name, tr)
}

// issueToken validates tr, signs the token and returns tr with its status filled in.
func (s *Server) issueToken(ctx context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	kind := authenticationv1.SchemeGroupVersion.WithKind("TokenRequest").GroupKind()
	if tr.Namespace != "" && tr.Namespace != namespace {
		return nil, badRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if tr.Spec.ExpirationSeconds == nil {
		tr.Spec.ExpirationSeconds = new(int64)
		*tr.Spec.ExpirationSeconds = int64(defaultTokenExpiration / time.Second)
	}
	if len(tr.Spec.Audiences) == 0 {
		tr.Spec.Audiences = slices.Clone(s.apiAudiences)
	}
	var errs field.ErrorList
	exp := time.Duration(*tr.Spec.ExpirationSeconds) * time.Second
	if exp < minTokenExpiration {
		errs = append(errs, field.Invalid(field.NewPath("spec", "expirationSeconds"), *tr.Spec.ExpirationSeconds, "may not specify a duration less than 10 minutes"))
	}
	if *tr.Spec.ExpirationSeconds > math.MaxUint32 {
		errs = append(errs, field.TooLong(field.NewPath("spec", "expirationSeconds"), *tr.Spec.ExpirationSeconds, math.MaxUint32))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(kind, name, errs)
	}
	if max := s.cfg.ServiceAccountMaxTokenExpiration; max > 0 && exp > max {
		exp = max
	}

	saObj, err := s.lookup(ctx, serviceAccountsGVR, namespace, name)
	if err != nil {
		return nil, toStatus(err, serviceAccountsGVR.GroupResource(), name)
	}
	sa := saObj.(*corev1.ServiceAccount)
	if sa.DeletionTimestamp != nil {
		return nil, apierrors.NewNotFound(serviceAccountsGVR.GroupResource(), name)
	}

	now := time.Now()
	priv := &satoken.PrivateClaims{Namespace: namespace, ServiceAccount: satoken.Ref{Name: sa.Name, UID: string(sa.UID)}}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		if err := s.bindToken(ctx, namespace, sa, ref, priv); err != nil {
			return nil, err
		}
	}
	claims := &satoken.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: satoken.Subject(namespace, sa.Name), Audience: tr.Spec.Audiences, ID: string(uuid.NewUUID()),
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(exp)),
		},
		Kubernetes: priv,
	}
	token, err := s.saSigner.Sign(claims)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	out := tr.DeepCopy()
	out.TypeMeta = metav1.TypeMeta{Kind: "TokenRequest", APIVersion: authenticationv1.SchemeGroupVersion.String()}
	out.Name, out.Namespace = sa.Name, namespace
	out.CreationTimestamp = metav1.NewTime(now.Truncate(time.Second))
	out.Status = authenticationv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.NewTime(claims.ExpiresAt.Time)}
	return out, nil
}

// bindToken checks the object a token is to be bound to and records it in the claims: a pod
// running as the account (and the node it runs on), a secret, or a node.
func (s *Server) bindToken(ctx context.Context, namespace string, sa *corev1.ServiceAccount, ref *authenticationv1.BoundObjectReference, priv *satoken.PrivateClaims) error {
	if ref.APIVersion != "" && ref.APIVersion != "v1" {
		return badRequest("cannot bind token to object of type %s, %s", ref.APIVersion, ref.Kind)
	}
	var gvr schema.GroupVersionResource
	ns := namespace
	switch ref.Kind {
	case "Pod":
		gvr = podsGVR
	case "Secret":
		gvr = secretsGVR
	case "Node":
		gvr, ns = nodesGVR, ""
	default:
		return badRequest("cannot bind token for serviceaccount %q to object of type %s, %s", sa.Name, ref.APIVersion, ref.Kind)
	}
	obj, err := s.lookup(ctx, gvr, ns, ref.Name)
	if err != nil {
		return toStatus(err, gvr.GroupResource(), ref.Name)
	}
	m := obj.(metav1.Object)
	if ref.UID != "" && ref.UID != m.GetUID() {
		return apierrors.NewConflict(gvr.GroupResource(), ref.Name,
			fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
	}
	r := &satoken.Ref{Name: m.GetName(), UID: string(m.GetUID())}
	switch o := obj.(type) {
	case *corev1.Pod:
		if o.Spec.ServiceAccountName != sa.Name {
			return badRequest("cannot bind token for serviceaccount %q to pod running with different serviceaccount name.", sa.Name)
		}
		priv.Pod = r
		if o.Spec.NodeName != "" {
			if n, err := s.lookup(ctx, nodesGVR, "", o.Spec.NodeName); err == nil {
				priv.Node = &satoken.Ref{Name: o.Spec.NodeName, UID: string(n.(*corev1.Node).UID)}
			}
		}
	case *corev1.Secret:
		priv.Secret = r
	case *corev1.Node:
		priv.Node = r
	}
	return nil
}

// lookup reads an object from the watch cache, and from etcd when the cache does not have it
// yet (it may lag a write that just happened).
func (s *Server) lookup(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (runtime.Object, error) {
	rs := s.resources[gvr]
	if rs == nil {
		return nil, fmt.Errorf("%s are not served", gvr.Resource)
	}
	return rs.lookup(ctx, rs.key(namespace, name))
}

// authenticateServiceAccount returns the user of a service-account token valid for one of
// audiences, with the audiences it matched.
func (s *Server) authenticateServiceAccount(ctx context.Context, token string, audiences []string) (pki.UserInfo, []string, error) {
	if s.saVerifier == nil {
		return pki.UserInfo{}, nil, errors.New("service-account tokens are not accepted")
	}
	c, matched, err := s.saVerifier.Verify(token, audiences)
	if err != nil {
		return pki.UserInfo{}, nil, err
	}
	if c.IsLegacy() {
		// Checked before the account so that a deleted Secret revokes the token however
		// the account fares.
		if err := s.checkLegacyTokenSecret(ctx, token, c); err != nil {
			return pki.UserInfo{}, nil, err
		}
	}
	ns, name, uid := c.Account()
	saObj, err := s.lookup(ctx, serviceAccountsGVR, ns, name)
	if err != nil {
		return pki.UserInfo{}, nil, fmt.Errorf("service account %s/%s: %w", ns, name, err)
	}
	if sa := saObj.(*corev1.ServiceAccount); sa.DeletionTimestamp != nil || (uid != "" && string(sa.UID) != uid) {
		return pki.UserInfo{}, nil, fmt.Errorf("service account %s/%s has been deleted", ns, name)
	}
	if c.IsLegacy() {
		u := satoken.UserOf(c)
		return pki.UserInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}, matched, nil
	}
	k := c.Kubernetes
	type boundObject struct {
		ref       *satoken.Ref
		gvr       schema.GroupVersionResource
		namespace string
	}
	bound := []boundObject{{k.Pod, podsGVR, k.Namespace}, {k.Secret, secretsGVR, k.Namespace}}
	if k.Pod == nil {
		// A node reference beside a pod only records where the pod ran; alone it binds.
		bound = append(bound, boundObject{k.Node, nodesGVR, ""})
	}
	for _, b := range bound {
		if b.ref == nil {
			continue
		}
		obj, err := s.lookup(ctx, b.gvr, b.namespace, b.ref.Name)
		if err != nil {
			return pki.UserInfo{}, nil, fmt.Errorf("bound %s %s: %w", strings.TrimSuffix(b.gvr.Resource, "s"), b.ref.Name, err)
		}
		if m := obj.(metav1.Object); string(m.GetUID()) != b.ref.UID {
			return pki.UserInfo{}, nil, fmt.Errorf("bound %s %s has been deleted and recreated", strings.TrimSuffix(b.gvr.Resource, "s"), b.ref.Name)
		}
	}
	u := satoken.UserOf(c)
	return pki.UserInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}, matched, nil
}

// checkLegacyTokenSecret checks that the Secret a legacy token names still holds exactly that
// token for that account: deleting the Secret (or replacing its token) revokes the token, as
// with kube-apiserver's legacy validator.
func (s *Server) checkLegacyTokenSecret(ctx context.Context, token string, c *satoken.Claims) error {
	ns, name, _ := c.Account()
	obj, err := s.lookup(ctx, secretsGVR, ns, c.SecretName)
	if err != nil {
		return fmt.Errorf("legacy token secret %s/%s: %w", ns, c.SecretName, err)
	}
	secret := obj.(*corev1.Secret)
	if secret.DeletionTimestamp != nil {
		return fmt.Errorf("legacy token secret %s/%s is being deleted", ns, c.SecretName)
	}
	// Kubernetes' validator does not look at the annotation; checking it too keeps a token
	// copied into a Secret of another account from counting.
	if secret.Annotations[corev1.ServiceAccountNameKey] != name {
		return fmt.Errorf("legacy token secret %s/%s is not annotated with account %s", ns, c.SecretName, name)
	}
	if subtle.ConstantTimeCompare(secret.Data[corev1.ServiceAccountTokenKey], []byte(token)) != 1 {
		return fmt.Errorf("legacy token secret %s/%s holds another token", ns, c.SecretName)
	}
	return nil
}

// authenticateToken runs a bearer token through every token authenticator. Static and
// bootstrap tokens carry no audience: they count only where the API server's own audiences
// are accepted, as kube-apiserver wraps its audience-unaware authenticators.
func (s *Server) authenticateToken(ctx context.Context, token string, audiences []string) (pki.UserInfo, []string, bool) {
	if satoken.LooksLikeJWT(token) && s.saVerifier != nil {
		u, matched, err := s.authenticateServiceAccount(ctx, token, audiences)
		if err == nil {
			return u, matched, true
		}
		s.log.Debug("rejected a service-account token", "err", err)
	}
	var apiMatched []string
	for _, a := range audiences {
		if slices.Contains(s.apiAudiences, a) {
			apiMatched = append(apiMatched, a)
		}
	}
	if len(apiMatched) == 0 {
		return pki.UserInfo{}, nil, false
	}
	if s.cfg.Tokens != nil {
		if u, ok := s.cfg.Tokens.Authenticate(token); ok {
			return u, apiMatched, true
		}
	}
	if u, ok := s.authenticateBootstrapToken(ctx, token); ok {
		return u, apiMatched, true
	}
	return pki.UserInfo{}, nil, false
}

// tokenReview answers a TokenReview: whether the token authenticates, as whom, and for
// which of the requested audiences (the API server's own when none are given).
func (s *Server) tokenReview(ctx context.Context, o *authenticationv1.TokenReview) (*authenticationv1.TokenReview, error) {
	if o.Spec.Token == "" {
		return nil, apierrors.NewInvalid(authenticationv1.SchemeGroupVersion.WithKind("TokenReview").GroupKind(), o.Name,
			field.ErrorList{field.Required(field.NewPath("spec", "token"), "")})
	}
	audiences := o.Spec.Audiences
	if len(audiences) == 0 {
		audiences = s.apiAudiences
	}
	o.Status = authenticationv1.TokenReviewStatus{}
	if u, matched, ok := s.authenticateToken(ctx, o.Spec.Token, audiences); ok {
		o.Status.Authenticated = true
		o.Status.Audiences = matched
		o.Status.User = authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
		if len(u.Extra) > 0 {
			o.Status.User.Extra = map[string]authenticationv1.ExtraValue{}
			for k, v := range u.Extra {
				o.Status.User.Extra[k] = v
			}
		}
	} else {
		o.Status.Error = "[invalid bearer token, token lookup failed]"
	}
	o.Spec.Token = "" // never echoed back
	o.TypeMeta = metav1.TypeMeta{Kind: "TokenReview", APIVersion: authenticationv1.SchemeGroupVersion.String()}
	return o, nil
}

// Names of the token volume ServiceAccount admission adds.
const (
	serviceAccountMountPath  = "/var/run/secrets/kubernetes.io/serviceaccount"
	apiAccessVolumePrefix    = "kube-api-access-"
	rootCAConfigMap          = "kube-root-ca.crt"
	serviceAccountTokenTTL   = 3607 // seconds, the kubelet rotates it at 80%
	serviceAccountVolumeMode = 0o644
)

// admitServiceAccountToken is the mounting half of Kubernetes' ServiceAccount admission: a
// pod whose account (and the pod itself) does not turn automountServiceAccountToken off gets
// a projected kube-api-access-<random> volume holding a token for its account, the cluster
// CA (the kube-root-ca.crt ConfigMap) and its namespace, mounted read-only at
// /var/run/secrets/kubernetes.io/serviceaccount in every container that has nothing there.
// Unlike Kubernetes, a pod naming an account that does not exist (yet) is admitted: the
// account is created by a controller moments after its namespace, and refusing pods in the
// meantime would only add retries. Its token request fails until the account exists.
func (s *Server) admitServiceAccountToken(ctx context.Context, pod *corev1.Pod) {
	if pod.Spec.AutomountServiceAccountToken != nil && !*pod.Spec.AutomountServiceAccountToken {
		return
	}
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return
	}
	if pod.Spec.AutomountServiceAccountToken == nil {
		if obj, err := s.lookup(ctx, serviceAccountsGVR, pod.Namespace, pod.Spec.ServiceAccountName); err == nil {
			if a := obj.(*corev1.ServiceAccount).AutomountServiceAccountToken; a != nil && !*a {
				return
			}
		}
	}
	name := ""
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, apiAccessVolumePrefix) && v.Projected != nil {
			name = v.Name
		}
	}
	if name == "" {
		name = apiAccessVolumePrefix + rand.String(5)
		mode := int32(serviceAccountVolumeMode)
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			Projected: &corev1.ProjectedVolumeSource{DefaultMode: &mode, Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: new(int64)}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: rootCAConfigMap},
					Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
			}},
		}})
		*pod.Spec.Volumes[len(pod.Spec.Volumes)-1].Projected.Sources[0].ServiceAccountToken.ExpirationSeconds = serviceAccountTokenTTL
	}
	mount := func(cs []corev1.Container) {
		for i := range cs {
			if !slices.ContainsFunc(cs[i].VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == serviceAccountMountPath }) {
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, corev1.VolumeMount{Name: name, ReadOnly: true, MountPath: serviceAccountMountPath})
			}
		}
	}
	mount(pod.Spec.InitContainers)
	mount(pod.Spec.Containers)
}
