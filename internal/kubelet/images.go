package kubelet

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Image garbage collection starts above highImageUsage percent of the image disk and frees
// down to lowImageUsage, never taking an image used or first seen within minImageAge: the
// kubelet's defaults (imageGCHighThresholdPercent, imageGCLowThresholdPercent,
// imageMinimumGCAge).
const (
	highImageUsage = 85
	lowImageUsage  = 80
	minImageAge    = 2 * time.Minute
)

var errPullBackoff = errors.New("image pull back-off")

// ensureImage makes c's image present according to its imagePullPolicy and returns the
// runtime's reference for it. Failures become the container's waiting reason
// (ErrImagePull, ImagePullBackOff, ErrImageNeverPull) with the events Kubernetes records.
func (k *Kubelet) ensureImage(ctx context.Context, pod *v1.Pod, c *v1.Container) (string, error) {
	ref := containerRef(pod, c)
	spec := &runtimeapi.ImageSpec{Image: c.Image}
	var present string
	if st, err := k.images.ImageStatus(ctx, spec, false); err == nil && st.GetImage() != nil {
		present = st.GetImage().Id
	}
	policy := c.ImagePullPolicy
	if policy == "" {
		policy = v1.PullIfNotPresent
	}
	switch {
	case present != "" && policy != v1.PullAlways:
		k.recordOnce(pod, c.Name, v1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
		return present, nil
	case present == "" && policy == v1.PullNever:
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		if k.reasons.set(pod.UID, c.Name, "ErrImageNeverPull", msg) {
			k.recorder.Event(ref, v1.EventTypeWarning, "ErrImageNeverPull", msg)
		}
		return "", errors.New(msg)
	}
	key := backoffKey(pod.UID, c.Image)
	if k.backoff.pull.b.IsInBackOffSinceUpdate(key, time.Now()) {
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		if k.reasons.set(pod.UID, c.Name, "ImagePullBackOff", msg) {
			k.recorder.Event(ref, v1.EventTypeNormal, "BackOff", msg)
		}
		return "", errPullBackoff
	}
	k.recorder.Eventf(ref, v1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	start := time.Now()
	auths, err := k.pullAuths(ctx, pod, c.Image)
	if err != nil {
		k.log.Warn("reading imagePullSecrets", "pod", klogRef(pod), "err", err)
	}
	var imageRef string
	for _, auth := range auths {
		if imageRef, err = k.images.PullImage(ctx, spec, auth, nil); err == nil {
			break
		}
	}
	if err != nil {
		k.backoff.pull.next(key, time.Now())
		k.reasons.set(pod.UID, c.Name, "ErrImagePull", err.Error())
		k.recorder.Eventf(ref, v1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", c.Image, err)
		k.recorder.Event(ref, v1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		return "", err
	}
	var size uint64
	if st, err := k.images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: imageRef}, false); err == nil && st.GetImage() != nil {
		size = st.GetImage().Size
	}
	took := time.Since(start).Round(time.Millisecond)
	k.recorder.Eventf(ref, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s (%s including waiting). Image size: %d bytes.", c.Image, took, took, size)
	return imageRef, nil
}

// pullAuths returns the credentials to try for image, from the pod's imagePullSecrets
// (dockerconfigjson or dockercfg) whose registry matches, then anonymous.
func (k *Kubelet) pullAuths(ctx context.Context, pod *v1.Pod, image string) ([]*runtimeapi.AuthConfig, error) {
	host := registryHost(image)
	var out []*runtimeapi.AuthConfig
	var errs []error
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := k.getter().Secret(ctx, pod.Namespace, ref.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var entries map[string]dockerAuth
		switch s.Type {
		case v1.SecretTypeDockerConfigJson:
			var cfg struct {
				Auths map[string]dockerAuth `json:"auths"`
			}
			err = json.Unmarshal(s.Data[v1.DockerConfigJsonKey], &cfg)
			entries = cfg.Auths
		case v1.SecretTypeDockercfg:
			err = json.Unmarshal(s.Data[v1.DockerConfigKey], &entries)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %s: %w", ref.Name, err))
			continue
		}
		for reg, a := range entries {
			if normalizeRegistry(reg) != host {
				continue
			}
			auth := &runtimeapi.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth,
				ServerAddress: host, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
			if a.Auth != "" && a.Username == "" {
				if b, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
					auth.Username, auth.Password, _ = strings.Cut(string(b), ":")
				}
			}
			out = append(out, auth)
		}
	}
	return append(out, nil), errors.Join(errs...)
}

type dockerAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// registryHost is the registry part of an image reference (docker.io when there is none).
func registryHost(image string) string {
	first, _, ok := strings.Cut(image, "/")
	if !ok || !strings.ContainsAny(first, ".:") && first != "localhost" {
		return "docker.io"
	}
	return first
}

// normalizeRegistry turns a docker config key (https://index.docker.io/v1/, host:port,
// http://host/path) into a registry host.
func normalizeRegistry(key string) string {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	key, _, _ = strings.Cut(key, "/")
	if key == "index.docker.io" || key == "registry-1.docker.io" {
		return "docker.io"
	}
	return key
}

// imageRecord is what image garbage collection remembers of an image between passes.
type imageRecord struct {
	firstSeen, lastUsed time.Time
}

// collectImages removes images no container uses once the image disk is fuller than
// highImageUsage, until it is below lowImageUsage (see imagesToRemove).
func (k *Kubelet) collectImages(ctx context.Context) {
	fsInfo, err := k.images.ImageFsInfo(ctx)
	if err != nil || len(fsInfo.GetImageFilesystems()) == 0 {
		return
	}
	imgs, err := k.images.ListImages(ctx, nil)
	if err != nil {
		return
	}
	cs, err := k.runtime.ListContainers(ctx, nil)
	if err != nil {
		return
	}
	inUse := map[string]bool{}
	for _, c := range cs {
		inUse[c.ImageRef] = true
		inUse[c.GetImage().GetImage()] = true
	}
	now := time.Now()
	k.imageRecords = trackImages(k.imageRecords, imgs, inUse, now)

	mount := fsInfo.GetImageFilesystems()[0].GetFsId().GetMountpoint()
	var st unix.Statfs_t
	if unix.Statfs(mount, &st) != nil || st.Blocks == 0 {
		return
	}
	total := st.Blocks * uint64(st.Bsize)
	used := total - st.Bavail*uint64(st.Bsize)
	if used*100/total < highImageUsage {
		return
	}
	goal := used - min(used, total*lowImageUsage/100)
	k.log.Info("image disk above its high threshold; removing unused images", "usedPercent", used*100/total, "toFree", goal)
	for _, img := range imagesToRemove(imgs, k.imageRecords, inUse, now, goal) {
		if err := k.images.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: img.Id}); err != nil {
			k.log.Warn("removing unused image", "image", img.Id, "err", err)
			continue
		}
		delete(k.imageRecords, img.Id)
		k.log.Info("removed unused image", "image", img.Id, "size", img.Size)
	}
}

// trackImages updates records for the images listed now: when each was first seen and
// last used by a container. Records of images that are gone are dropped.
func trackImages(records map[string]imageRecord, imgs []*runtimeapi.Image, inUse map[string]bool, now time.Time) map[string]imageRecord {
	out := make(map[string]imageRecord, len(imgs))
	for _, img := range imgs {
		r, ok := records[img.Id]
		if !ok {
			r = imageRecord{firstSeen: now}
		}
		if imageInUse(img, inUse) {
			r.lastUsed = now
		}
		out[img.Id] = r
	}
	return out
}

func imageInUse(img *runtimeapi.Image, inUse map[string]bool) bool {
	if inUse[img.Id] {
		return true
	}
	for _, ref := range append(img.RepoTags, img.RepoDigests...) {
		if inUse[ref] {
			return true
		}
	}
	return false
}

// imagesToRemove picks the images to remove to free goal bytes, as the kubelet's image GC
// does: none that a container uses, that is pinned, or that was used or first seen within
// minImageAge; least recently used first, then the earliest seen.
func imagesToRemove(imgs []*runtimeapi.Image, records map[string]imageRecord, inUse map[string]bool, now time.Time, goal uint64) []*runtimeapi.Image {
	var candidates []*runtimeapi.Image
	for _, img := range imgs {
		r := records[img.Id]
		if imageInUse(img, inUse) || img.Pinned || now.Sub(r.firstSeen) < minImageAge || now.Sub(r.lastUsed) < minImageAge {
			continue
		}
		candidates = append(candidates, img)
	}
	sort.SliceStable(candidates, func(i, j int) bool {
		a, b := records[candidates[i].Id], records[candidates[j].Id]
		if !a.lastUsed.Equal(b.lastUsed) {
			return a.lastUsed.Before(b.lastUsed)
		}
		return a.firstSeen.Before(b.firstSeen)
	})
	var out []*runtimeapi.Image
	var freed uint64
	for _, img := range candidates {
		if freed >= goal {
			break
		}
		out = append(out, img)
		freed += img.Size
	}
	return out
}
