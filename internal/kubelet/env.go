package kubelet

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/kubelet/fieldpath"
	"github.com/nanokube/nanokube/internal/kubelet/volume"
)

// apiGetter reads configMaps and secrets through the watches of objects, claims and volumes
// straight from the API server.
type apiGetter struct {
	client  kubernetes.Interface
	objects *objectCache
}

func (g apiGetter) ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error) {
	return g.objects.ConfigMap(ctx, namespace, name)
}

func (g apiGetter) Secret(ctx context.Context, namespace, name string) (*v1.Secret, error) {
	return g.objects.Secret(ctx, namespace, name)
}

func (g apiGetter) PersistentVolumeClaim(ctx context.Context, namespace, name string) (*v1.PersistentVolumeClaim, error) {
	return g.client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (g apiGetter) PersistentVolume(ctx context.Context, name string) (*v1.PersistentVolume, error) {
	return g.client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
}

func (g apiGetter) ServiceAccountToken(ctx context.Context, namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	return g.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, tr, metav1.CreateOptions{})
}

// envList keeps environment variables in first-definition order; a later definition of a
// name replaces the value in place, as a map would.
type envList struct {
	kvs   []*runtimeapi.KeyValue
	index map[string]int
}

func (e *envList) set(key, value string) {
	if e.index == nil {
		e.index = map[string]int{}
	}
	if i, ok := e.index[key]; ok {
		e.kvs[i].Value = []byte(value)
		return
	}
	e.index[key] = len(e.kvs)
	e.kvs = append(e.kvs, &runtimeapi.KeyValue{Key: key, Value: []byte(value)})
}

func (e *envList) lookup(key string) (string, bool) {
	if i, ok := e.index[key]; ok {
		return string(e.kvs[i].Value), true
	}
	return "", false
}

func envLookup(kvs []*runtimeapi.KeyValue) func(string) (string, bool) {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = string(kv.Value)
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// containerEnv builds c's environment as the kubelet does: service links, then envFrom,
// then env, each value able to refer to earlier ones with $(NAME). A missing configMap or
// secret (not optional) is an error: the container waits in CreateContainerConfigError.
func (k *Kubelet) containerEnv(ctx context.Context, pod *v1.Pod, c *v1.Container) ([]*runtimeapi.KeyValue, error) {
	var env envList
	if err := k.serviceEnv(pod, &env); err != nil {
		return nil, err
	}
	get := k.getter()
	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm, err := get.ConfigMap(ctx, pod.Namespace, from.ConfigMapRef.Name)
			if err != nil {
				if optional(from.ConfigMapRef.Optional) && apierrors.IsNotFound(err) {
					continue
				}
				return nil, missing("configmap", from.ConfigMapRef.Name, err)
			}
			data = cm.Data
		case from.SecretRef != nil:
			s, err := get.Secret(ctx, pod.Namespace, from.SecretRef.Name)
			if err != nil {
				if optional(from.SecretRef.Optional) && apierrors.IsNotFound(err) {
					continue
				}
				return nil, missing("secret", from.SecretRef.Name, err)
			}
			data = map[string]string{}
			for key, val := range s.Data {
				data[key] = string(val)
			}
		}
		var invalid []string
		for key, val := range data {
			name := from.Prefix + key
			if len(validation.IsEnvVarName(name)) > 0 {
				invalid = append(invalid, name)
				continue
			}
			env.set(name, val)
		}
		if len(invalid) > 0 {
			k.recorder.Eventf(pod, v1.EventTypeWarning, "InvalidEnvironmentVariableNames",
				"Keys [%s] from the EnvFrom were skipped since they are invalid environment variable names.", strings.Join(invalid, ", "))
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env.set(e.Name, expand(e.Value, env.lookup))
			continue
		}
		val, skip, err := k.envValueFrom(ctx, pod, c, e.ValueFrom)
		if err != nil {
			return nil, err
		}
		if !skip {
			env.set(e.Name, val)
		}
	}
	return env.kvs, nil
}

func (k *Kubelet) envValueFrom(ctx context.Context, pod *v1.Pod, c *v1.Container, from *v1.EnvVarSource) (string, bool, error) {
	get := k.getter()
	switch {
	case from.FieldRef != nil:
		v, err := fieldpath.Field(pod, from.FieldRef.FieldPath)
		return v, false, err
	case from.ResourceFieldRef != nil:
		v, err := fieldpath.Resource(pod, c.Name, from.ResourceFieldRef, k.allocatable())
		return v, false, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := get.ConfigMap(ctx, pod.Namespace, ref.Name)
		if err != nil {
			if optional(ref.Optional) && apierrors.IsNotFound(err) {
				return "", true, nil
			}
			return "", false, missing("configmap", ref.Name, err)
		}
		if v, ok := cm.Data[ref.Key]; ok {
			return v, false, nil
		}
		if v, ok := cm.BinaryData[ref.Key]; ok {
			return string(v), false, nil
		}
		if optional(ref.Optional) {
			return "", true, nil
		}
		return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		s, err := get.Secret(ctx, pod.Namespace, ref.Name)
		if err != nil {
			if optional(ref.Optional) && apierrors.IsNotFound(err) {
				return "", true, nil
			}
			return "", false, missing("secret", ref.Name, err)
		}
		if v, ok := s.Data[ref.Key]; ok {
			return string(v), false, nil
		}
		if optional(ref.Optional) {
			return "", true, nil
		}
		return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
	}
	return "", true, nil
}

func optional(b *bool) bool { return b != nil && *b }

// missing words a failed read of a configMap or secret as the kubelet does.
func missing(kind, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %q not found: %w", kind, name, volume.ErrMissingSource)
	}
	return fmt.Errorf("%s %q: %w", kind, name, err)
}

// serviceEnv adds the Docker-links-style variables of the services the pod can see: those
// of its namespace when enableServiceLinks is on, and the API server's service always.
func (k *Kubelet) serviceEnv(pod *v1.Pod, env *envList) error {
	svcs, err := k.svcLister.List(labels.Everything())
	if err != nil {
		return err
	}
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	seen := map[string]bool{}
	for _, s := range svcs {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == v1.ClusterIPNone {
			continue
		}
		master := s.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes"
		if s.Namespace != pod.Namespace && !master || s.Namespace == pod.Namespace && !links && !master {
			continue
		}
		if seen[s.Name] && s.Namespace != pod.Namespace {
			continue // the pod's namespace wins a name clash
		}
		seen[s.Name] = true
		name := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		host := s.Spec.ClusterIP
		if len(s.Spec.Ports) == 0 {
			continue
		}
		first := s.Spec.Ports[0]
		env.set(name+"_SERVICE_HOST", host)
		env.set(name+"_SERVICE_PORT", strconv.Itoa(int(first.Port)))
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				env.set(name+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")), strconv.Itoa(int(p.Port)))
			}
		}
		proto := strings.ToLower(string(first.Protocol))
		env.set(name+"_PORT", fmt.Sprintf("%s://%s:%d", proto, host, first.Port))
		for _, p := range s.Spec.Ports {
			proto := strings.ToLower(string(p.Protocol))
			prefix := fmt.Sprintf("%s_PORT_%d_%s", name, p.Port, strings.ToUpper(proto))
			env.set(prefix, fmt.Sprintf("%s://%s:%d", proto, host, p.Port))
			env.set(prefix+"_PROTO", proto)
			env.set(prefix+"_PORT", strconv.Itoa(int(p.Port)))
			env.set(prefix+"_ADDR", host)
		}
	}
	return nil
}

// expand replaces $(NAME) with NAME's value when it is defined, leaves it as written when
// it is not, and turns $$ into $: Kubernetes' expansion rules for env, command and args.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += end + 2
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
