package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"google.golang.org/grpc/codes"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// Platform is the platform multi-arch indexes are resolved to.
var Platform = v1.Platform{OS: "linux", Architecture: "amd64"}

// Pull fetches ref (tag or digest) and stores it, trying the configured mirrors first.
// auth, if not nil, is used against the image's own registry. Concurrent pulls of one
// reference share one download.
func (s *Store) Pull(ctx context.Context, ref string, auth authn.Authenticator) (*Image, error) {
	r, err := parse(ref)
	if err != nil {
		return nil, err
	}
	full := fullName(r)
	v, err, _ := s.pulls.Do(full, func() (any, error) { return s.pull(ctx, r, auth) })
	if err != nil {
		return nil, err
	}
	return v.(*Image).clone(), nil
}

func (s *Store) pull(ctx context.Context, r name.Reference, auth authn.Authenticator) (*Image, error) {
	eps, err := s.registry.endpoints(r, auth)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, ep := range eps {
		img, err := s.pullFrom(ctx, r, ep)
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
		s.log.Debug("pull attempt failed", "ref", ep.ref.String(), "err", err)
	}
	// The registry's own answer (last) decides the class.
	last := errs[len(errs)-1]
	if len(errs) > 1 {
		return nil, fmt.Errorf("pull %s: %w (mirrors: %v)", fullName(r), last, errors.Join(errs[:len(errs)-1]...))
	}
	return nil, fmt.Errorf("pull %s: %w", fullName(r), last)
}

func (s *Store) pullFrom(ctx context.Context, r name.Reference, ep endpoint) (*Image, error) {
	opts := []remote.Option{
		remote.WithContext(ctx), remote.WithAuth(ep.auth), remote.WithTransport(ep.transport),
		remote.WithPlatform(Platform), remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	}
	desc, err := remote.Get(ep.ref, opts...)
	if err != nil {
		return nil, classifyRemote(err)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, classifyRemote(fmt.Errorf("resolve %s for %s/%s: %w", ep.ref, Platform.OS, Platform.Architecture, err))
	}
	var tag, digestRef string
	if t, ok := r.(name.Tag); ok {
		tag = fullName(t)
	}
	digestRef = repoName(r.Context()) + "@" + desc.Digest.String()
	return s.store(ctx, img, tag, digestRef)
}

// store unpacks img's layers and records it under tag and digestRef (either may be empty).
func (s *Store) store(ctx context.Context, img v1.Image, tag, digestRef string) (*Image, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, classifyRemote(fmt.Errorf("manifest: %w", err))
	}
	cfgRaw, err := img.RawConfigFile()
	if err != nil {
		return nil, classifyRemote(fmt.Errorf("config: %w", err))
	}
	if got, _, _ := v1.SHA256(strings.NewReader(string(cfgRaw))); got != m.Config.Digest {
		return nil, fmt.Errorf("config has digest %s, manifest says %s: %w", got, m.Config.Digest, errdefs.ErrDataLoss)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, classifyRemote(fmt.Errorf("layers: %w", err))
	}
	var ids []string
	var size uint64
	for _, l := range layers {
		id, n, err := s.ensureLayer(ctx, l)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
		size += n
	}
	return s.add(cfgRaw, ids, size, tag, digestRef)
}

// classifyRemote gives registry and network failures their error class, keeping the text.
func classifyRemote(err error) error {
	if err == nil || errdefs.Code(err) != codes.Unknown {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%w: %w", err, errdefs.ErrUnauthenticated)
		case te.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
		case te.StatusCode >= 500:
			return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return fmt.Errorf("%w: %w", err, errdefs.ErrUnauthenticated)
			}
		}
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("registry unreachable: %w: %w", err, errdefs.ErrUnavailable)
	}
	return err
}
