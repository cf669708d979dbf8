package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// Image is one stored image.
type Image struct {
	ID          string    `json:"id"` // config digest, "sha256:<hex>"
	RepoTags    []string  `json:"repoTags,omitempty"`
	RepoDigests []string  `json:"repoDigests,omitempty"`
	Layers      []string  `json:"layers"` // diff IDs, base first
	Size        uint64    `json:"size"`   // unpacked bytes
	Pinned      bool      `json:"pinned,omitempty"`
	Created     time.Time `json:"created"`

	// Config is the image's config file, loaded from the blob store.
	Config *v1.ConfigFile `json:"-"`
}

func (i *Image) clone() *Image {
	c := *i
	c.RepoTags = slices.Clone(i.RepoTags)
	c.RepoDigests = slices.Clone(i.RepoDigests)
	c.Layers = slices.Clone(i.Layers)
	return &c
}

// Store is the content-addressed image store. See the package doc for its layout.
type Store struct {
	root     string
	registry RegistryConfig
	log      *slog.Logger

	mu     sync.Mutex
	images map[string]*Image // by id
	inUse  map[string]int    // diff ID -> number of container rootfs using it

	pulls   singleflight.Group
	unpacks singleflight.Group
}

// Open loads (or creates) the store under root.
func Open(root string, reg RegistryConfig, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Store{root: root, registry: reg, log: log, images: map[string]*Image{}, inUse: map[string]int{}}
	for _, d := range []string{"blobs/sha256", "layers/sha256", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, err
		}
	}
	// Leftovers of unpacks interrupted by a crash.
	tmps, _ := os.ReadDir(filepath.Join(root, "tmp"))
	for _, t := range tmps {
		_ = os.RemoveAll(filepath.Join(root, "tmp", t.Name()))
	}
	b, err := os.ReadFile(s.indexPath())
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if err == nil {
		var list []*Image
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("image index %s: %w", s.indexPath(), err)
		}
		for _, img := range list {
			if img.Config, err = s.loadConfig(img.ID); err != nil {
				log.Warn("dropping image with unreadable config", "id", img.ID, "err", err)
				continue
			}
			s.images[img.ID] = img
		}
	}
	return s, nil
}

func (s *Store) indexPath() string { return filepath.Join(s.root, "index.json") }

func (s *Store) blobPath(digest string) string {
	return filepath.Join(s.root, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// LayerPath returns the directory a layer with diff ID diffID is unpacked in.
func (s *Store) LayerPath(diffID string) string {
	return filepath.Join(s.root, "layers", "sha256", strings.TrimPrefix(diffID, "sha256:"))
}

func (s *Store) loadConfig(id string) (*v1.ConfigFile, error) {
	f, err := os.Open(s.blobPath(id))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return v1.ParseConfigFile(f)
}

// saveIndexLocked writes the index atomically. Callers hold s.mu.
func (s *Store) saveIndexLocked() error {
	list := make([]*Image, 0, len(s.images))
	for _, img := range s.images {
		list = append(list, img)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.indexPath(), b)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// List returns every image.
func (s *Store) List() []*Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Image, 0, len(s.images))
	for _, img := range s.images {
		out = append(out, img.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Get finds an image by id (or unique id prefix), tag or digest reference.
func (s *Store) Get(ref string) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.getLocked(ref)
	if err != nil {
		return nil, err
	}
	return img.clone(), nil
}

func (s *Store) getLocked(ref string) (*Image, error) {
	if img, ok := s.images[ref]; ok {
		return img, nil
	}
	if img, ok := s.images["sha256:"+ref]; ok {
		return img, nil
	}
	if full, err := Normalize(ref); err == nil {
		for _, img := range s.images {
			if slices.Contains(img.RepoTags, full) || slices.Contains(img.RepoDigests, full) {
				return img, nil
			}
		}
	}
	if isIDLike(ref) {
		p := "sha256:" + strings.TrimPrefix(ref, "sha256:")
		var found *Image
		for id, img := range s.images {
			if strings.HasPrefix(id, p) {
				if found != nil {
					return nil, fmt.Errorf("image id prefix %q is ambiguous: %w", ref, errdefs.ErrInvalidArgument)
				}
				found = img
			}
		}
		if found != nil {
			return found, nil
		}
	}
	return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
}

// Remove deletes the image ref names. Layers no other image uses and no container holds are
// deleted from disk. Removing a missing image is not an error (CRI's contract).
func (s *Store) Remove(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.getLocked(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	delete(s.images, img.ID)
	if err := s.saveIndexLocked(); err != nil {
		return err
	}
	_ = os.Remove(s.blobPath(img.ID))
	s.gcLayersLocked(img.Layers)
	return nil
}

func (s *Store) gcLayersLocked(candidates []string) {
	used := map[string]bool{}
	for _, other := range s.images {
		for _, l := range other.Layers {
			used[l] = true
		}
	}
	for _, l := range candidates {
		if used[l] || s.inUse[l] > 0 {
			continue
		}
		if err := os.RemoveAll(s.LayerPath(l)); err != nil {
			s.log.Warn("remove layer", "diffID", l, "err", err)
		}
	}
}

// Acquire marks the layers of image id as used by one container rootfs and returns their
// directories, top layer first (overlayfs lowerdir order).
func (s *Store) Acquire(id string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, ok := s.images[id]
	if !ok {
		return nil, fmt.Errorf("image %q: %w", id, errdefs.ErrNotFound)
	}
	return s.acquireLocked(img.Layers), nil
}

// AcquireLayers is Acquire for a known layer chain (used when recovering containers whose
// image may since have been removed).
func (s *Store) AcquireLayers(layers []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acquireLocked(layers)
}

func (s *Store) acquireLocked(layers []string) []string {
	dirs := make([]string, 0, len(layers))
	for i := len(layers) - 1; i >= 0; i-- {
		s.inUse[layers[i]]++
		dirs = append(dirs, s.LayerPath(layers[i]))
	}
	return dirs
}

// Release undoes one Acquire of layers and deletes layers nothing uses any more.
func (s *Store) Release(layers []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range layers {
		if s.inUse[l]--; s.inUse[l] <= 0 {
			delete(s.inUse, l)
		}
	}
	s.gcLayersLocked(layers)
}

// FsInfo reports the bytes and inodes used by the store.
func (s *Store) FsInfo() (mountpoint string, bytes, inodes uint64) {
	_ = filepath.WalkDir(s.root, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		inodes++
		if fi, err := d.Info(); err == nil && !d.IsDir() {
			bytes += uint64(fi.Size())
		}
		return nil
	})
	return s.root, bytes, inodes
}

// add records an image whose layers are all unpacked, merging names with an existing record.
func (s *Store) add(cfgRaw []byte, layers []string, size uint64, tag, digestRef string) (*Image, error) {
	sum := sha256.Sum256(cfgRaw)
	id := "sha256:" + hex.EncodeToString(sum[:])
	if err := writeFileAtomic(s.blobPath(id), cfgRaw); err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(strings.NewReader(string(cfgRaw)))
	if err != nil {
		return nil, fmt.Errorf("image config %s: %v: %w", id, err, errdefs.ErrDataLoss)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	img, ok := s.images[id]
	if !ok {
		img = &Image{ID: id, Layers: layers, Size: size, Config: cfg, Created: cfg.Created.Time}
		s.images[id] = img
	}
	if tag != "" {
		// A tag names one image: move it.
		for _, other := range s.images {
			other.RepoTags = slices.DeleteFunc(other.RepoTags, func(t string) bool { return t == tag })
		}
		img.RepoTags = append(img.RepoTags, tag)
	}
	if digestRef != "" && !slices.Contains(img.RepoDigests, digestRef) {
		img.RepoDigests = append(img.RepoDigests, digestRef)
	}
	if err := s.saveIndexLocked(); err != nil {
		return nil, err
	}
	return img.clone(), nil
}

// ensureLayer unpacks layer into the store unless its diff ID is already there, verifying the
// uncompressed stream against the diff ID. Concurrent calls for one layer unpack it once.
func (s *Store) ensureLayer(ctx context.Context, layer v1.Layer) (diffID string, size uint64, err error) {
	h, err := layer.DiffID()
	if err != nil {
		return "", 0, fmt.Errorf("layer diff id: %w", err)
	}
	diffID = h.String()
	dst := s.LayerPath(diffID)
	v, err, _ := s.unpacks.Do(diffID, func() (any, error) {
		if sz, err := readSize(dst); err == nil {
			return sz, nil
		}
		tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "layer-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		rc, err := layer.Uncompressed()
		if err != nil {
			return nil, classifyRemote(fmt.Errorf("fetch layer %s: %w", diffID, err))
		}
		defer rc.Close()
		hasher := sha256.New()
		cr := &countingReader{r: io.TeeReader(&ctxReader{ctx: ctx, r: rc}, hasher)}
		fs := filepath.Join(tmp, "fs")
		if err := os.Mkdir(fs, 0o755); err != nil {
			return nil, err
		}
		if err := unpackLayer(fs, cr); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, classifyRemote(fmt.Errorf("unpack layer %s: %w", diffID, err))
		}
		// Drain trailing padding so the digest covers the whole stream.
		if _, err := io.Copy(io.Discard, cr); err != nil {
			return nil, classifyRemote(fmt.Errorf("read layer %s: %w", diffID, err))
		}
		if got := "sha256:" + hex.EncodeToString(hasher.Sum(nil)); got != diffID {
			return nil, fmt.Errorf("layer %s: content has digest %s: %w", diffID, got, errdefs.ErrDataLoss)
		}
		if err := os.WriteFile(filepath.Join(tmp, "size"), []byte(fmt.Sprint(cr.n)), 0o600); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, dst); err != nil && !os.IsExist(err) && !errors.Is(err, unix.ENOTEMPTY) {
			return nil, err
		}
		return uint64(cr.n), nil
	})
	if err != nil {
		return "", 0, err
	}
	return diffID, v.(uint64), nil
}

// LayerFS returns the root of an unpacked layer's files.
func layerFS(layerDir string) string { return filepath.Join(layerDir, "fs") }

// LowerDirs turns layer directories (from Acquire) into overlayfs lower directories.
func LowerDirs(layerDirs []string) []string {
	out := make([]string, len(layerDirs))
	for i, d := range layerDirs {
		out[i] = layerFS(d)
	}
	return out
}

func readSize(layerDir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(layerDir, "size"))
	if err != nil {
		return 0, err
	}
	var n uint64
	_, err = fmt.Sscan(string(b), &n)
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
