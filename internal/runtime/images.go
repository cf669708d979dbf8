package runtime

import (
	"context"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/image"
)

func criImage(img *image.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{Id: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests, Size: img.Size, Pinned: img.Pinned}
	if img.Config != nil {
		user, _, _ := strings.Cut(img.Config.Config.User, ":")
		if n, err := strconv.ParseInt(user, 10, 64); err == nil {
			out.Uid = &runtimeapi.Int64Value{Value: n}
		} else {
			out.Username = user
		}
	}
	if out.RepoTags == nil {
		out.RepoTags = []string{}
	}
	return out
}

// ListImages implements CRI.
func (r *Runtime) ListImages(_ context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	resp := &runtimeapi.ListImagesResponse{}
	if ref := req.GetFilter().GetImage().GetImage(); ref != "" {
		img, err := r.images.Get(ref)
		if err == nil {
			resp.Images = append(resp.Images, criImage(img))
		}
		return resp, nil
	}
	for _, img := range r.images.List() {
		resp.Images = append(resp.Images, criImage(img))
	}
	return resp, nil
}

// ImageStatus implements CRI: a missing image is an empty response, not an error.
func (r *Runtime) ImageStatus(_ context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	img, err := r.images.Get(req.GetImage().GetImage())
	if err != nil {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	resp := &runtimeapi.ImageStatusResponse{Image: criImage(img)}
	if req.GetVerbose() && img.Config != nil {
		resp.Info = map[string]string{"layers": strings.Join(img.Layers, ",")}
	}
	return resp, nil
}

// PullImage implements CRI.
func (r *Runtime) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	var auth authn.Authenticator
	if a := req.GetAuth(); a != nil {
		auth = authn.FromConfig(authn.AuthConfig{
			Username: a.GetUsername(), Password: a.GetPassword(), Auth: a.GetAuth(),
			IdentityToken: a.GetIdentityToken(), RegistryToken: a.GetRegistryToken(),
		})
	}
	img, err := r.images.Pull(ctx, req.GetImage().GetImage(), auth)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PullImageResponse{ImageRef: img.ID}, nil
}

// RemoveImage implements CRI.
func (r *Runtime) RemoveImage(_ context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	if err := r.images.Remove(req.GetImage().GetImage()); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo implements CRI.
func (r *Runtime) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	mp, bytes, inodes := r.images.FsInfo()
	u := &runtimeapi.FilesystemUsage{
		Timestamp: nowNano(), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: mp},
		UsedBytes: &runtimeapi.UInt64Value{Value: bytes}, InodesUsed: &runtimeapi.UInt64Value{Value: inodes},
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{u}}, nil
}
