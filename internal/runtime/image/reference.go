package image

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// Normalize turns a user reference ("busybox", "127.0.0.1:5000/x:v1", "repo@sha256:...") into
// its full form ("docker.io/library/busybox:latest"), the form tags and digests are stored in.
func Normalize(ref string) (string, error) {
	r, err := parse(ref)
	if err != nil {
		return "", err
	}
	return fullName(r), nil
}

func parse(ref string) (name.Reference, error) {
	if ref == "" {
		return nil, fmt.Errorf("empty image reference: %w", errdefs.ErrInvalidArgument)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	return r, nil
}

func repoName(repo name.Repository) string {
	reg := repo.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + repo.RepositoryStr()
}

func fullName(r name.Reference) string {
	switch t := r.(type) {
	case name.Tag:
		return repoName(t.Repository) + ":" + t.TagStr()
	case name.Digest:
		return repoName(t.Repository) + "@" + t.DigestStr()
	}
	return r.Name()
}

// isIDLike reports whether s looks like an image id or a prefix of one.
func isIDLike(s string) bool {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) < 12 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
