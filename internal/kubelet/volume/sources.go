package volume

import (
	"context"
	"errors"
	"fmt"

	"github.com/nanokube/nanokube/internal/kubelet/fieldpath"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// payload is what one atomically written volume should contain.
type payload struct {
	files map[string]file // by path relative to the volume
}

// file is one file of a payload. uid -1 means the kubelet's own.
type file struct {
	data []byte
	mode uint32
	uid  int
}

func (p *payload) add(path string, data []byte, mode *int32, user *int64, defMode *int32, defUser *int64) {
	f := file{data: data, mode: 0o644, uid: -1}
	if mode == nil {
		mode = defMode
	}
	if mode != nil {
		f.mode = uint32(*mode) & 0o777
	}
	if user == nil {
		user = defUser
	}
	if user != nil {
		f.uid = int(*user)
	}
	p.files[path] = f
}

// keySource is a configMap or secret reference as volumes and projections spell it.
type keySource struct {
	name     string
	items    []v1.KeyToPath
	optional *bool
	mode     *int32 // the volume's defaultMode
	user     *int64 // the volume's defaultUser
}

func (m *Manager) configMapFiles(ctx context.Context, namespace string, p *payload, src keySource) error {
	cm, err := m.get.ConfigMap(ctx, namespace, src.name)
	var data map[string][]byte
	if err == nil {
		data = make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
		for k, v := range cm.Data {
			data[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			data[k] = v
		}
	}
	return addKeys(p, "configMap", src, data, err)
}

func (m *Manager) secretFiles(ctx context.Context, namespace string, p *payload, src keySource) error {
	s, err := m.get.Secret(ctx, namespace, src.name)
	var data map[string][]byte
	if err == nil {
		data = s.Data
	}
	return addKeys(p, "secret", src, data, err)
}

// addKeys adds every key of data, or the listed items, to p, applying the optional rules
// to a missing object (getErr is NotFound) or key.
func addKeys(p *payload, kind string, src keySource, data map[string][]byte, getErr error) error {
	optional := src.optional != nil && *src.optional
	if apierrors.IsNotFound(getErr) {
		if optional {
			return nil
		}
		return fmt.Errorf("%w: %s %q not found", ErrMissingSource, kind, src.name)
	}
	if getErr != nil {
		return fmt.Errorf("get %s %q: %w", kind, src.name, getErr)
	}
	if len(src.items) == 0 {
		for k, v := range data {
			p.add(k, v, nil, nil, src.mode, src.user)
		}
		return nil
	}
	for _, it := range src.items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("%w: %s %q has no key %q", ErrMissingSource, kind, src.name, it.Key)
		}
		p.add(it.Path, v, it.Mode, it.User, src.mode, src.user)
	}
	return nil
}

func downwardAPIFiles(p *payload, pod *v1.Pod, items []v1.DownwardAPIVolumeFile, defMode *int32, defUser *int64, allocatable v1.ResourceList) error {
	for _, it := range items {
		var value string
		var err error
		switch {
		case it.FieldRef != nil:
			value, err = fieldpath.Field(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			if it.ResourceFieldRef.ContainerName == "" {
				return fmt.Errorf("downwardAPI item %q: resourceFieldRef needs a containerName in a volume", it.Path)
			}
			value, err = fieldpath.Resource(pod, "", it.ResourceFieldRef, allocatable)
		default:
			err = errors.New("neither fieldRef nor resourceFieldRef is set")
		}
		if err != nil {
			return fmt.Errorf("downwardAPI item %q: %w", it.Path, err)
		}
		p.add(it.Path, []byte(value), it.Mode, it.User, defMode, defUser)
	}
	return nil
}

func (m *Manager) projectedFiles(ctx context.Context, pod *v1.Pod, p *payload, src *v1.ProjectedVolumeSource, allocatable v1.ResourceList) error {
	for i, s := range src.Sources {
		var err error
		switch {
		case s.ConfigMap != nil:
			err = m.configMapFiles(ctx, pod.Namespace, p, keySource{
				name: s.ConfigMap.Name, items: s.ConfigMap.Items, optional: s.ConfigMap.Optional,
				mode: src.DefaultMode, user: src.DefaultUser,
			})
		case s.Secret != nil:
			err = m.secretFiles(ctx, pod.Namespace, p, keySource{
				name: s.Secret.Name, items: s.Secret.Items, optional: s.Secret.Optional,
				mode: src.DefaultMode, user: src.DefaultUser,
			})
		case s.DownwardAPI != nil:
			err = downwardAPIFiles(p, pod, s.DownwardAPI.Items, src.DefaultMode, src.DefaultUser, allocatable)
		case s.ServiceAccountToken != nil:
			err = m.serviceAccountTokenFile(ctx, pod, p, s.ServiceAccountToken, src.DefaultMode, src.DefaultUser)
		case s.ClusterTrustBundle != nil:
			err = errors.New("projected clusterTrustBundle volumes are not supported yet")
		default:
			err = errors.New("empty or unsupported projection")
		}
		if err != nil {
			return fmt.Errorf("source %d: %w", i, err)
		}
	}
	return nil
}
