package volume

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	dataLink    = "..data"
	dataLinkTmp = "..data_tmp"
)

// writeAtomic makes dir hold exactly files, the way Kubernetes' AtomicWriter does (see the
// package documentation), and reports whether anything was written. With fsGroup the files
// belong to that group and are group-readable.
func writeAtomic(dir string, files map[string]file, fsGroup *int64) (bool, error) {
	want := make(map[string]file, len(files))
	for p, f := range files {
		clean := filepath.Clean(p)
		if p == "" || clean == "." || filepath.IsAbs(clean) || strings.HasPrefix(clean, "..") ||
			slices.Contains(strings.Split(clean, "/"), "..") {
			return false, fmt.Errorf("invalid file path %q: must be relative, without '..' and not start with '..'", p)
		}
		if f.uid < 0 {
			f.uid = os.Geteuid()
		}
		if fsGroup != nil {
			f.mode |= 0o440
		}
		want[clean] = f
	}
	gid := os.Getegid()
	if fsGroup != nil {
		gid = int(*fsGroup)
	}

	old, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if old != "" {
		same, err := holds(filepath.Join(dir, old), want, gid)
		if err != nil {
			return false, err
		}
		if same {
			// Someone may have removed a visible link; putting it back costs an lstat.
			return false, linkVisible(dir, want)
		}
	}

	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, err
	}
	if err := fill(ts, want, gid, fsGroup != nil); err != nil {
		os.RemoveAll(ts)
		return false, err
	}
	tmp := filepath.Join(dir, dataLinkTmp)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		os.RemoveAll(ts)
		return false, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		os.RemoveAll(ts)
		return false, err
	}
	if err := linkVisible(dir, want); err != nil {
		return true, err
	}
	return true, prune(dir, filepath.Base(ts), want)
}

// holds reports whether tsDir contains exactly the wanted files with their content, mode and
// owner.
func holds(tsDir string, want map[string]file, gid int) (bool, error) {
	n := 0
	err := filepath.WalkDir(tsDir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil || n != len(want) {
		return false, err
	}
	for rel, f := range want {
		path := filepath.Join(tsDir, rel)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return false, nil
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != f.mode || int(st.Uid) != f.uid || int(st.Gid) != gid {
			return false, nil
		}
		data, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(data, f.data) {
			return false, err
		}
	}
	return true, nil
}

// fill writes the files into the new timestamped directory ts.
func fill(ts string, want map[string]file, gid int, fsGroup bool) error {
	dirMode := uint32(0o755)
	if fsGroup {
		dirMode |= 0o2000 // new files inherit the group, as after SetVolumeOwnership
	}
	mkdir := func(d string) error {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := os.Lchown(d, -1, gid); err != nil {
			return err
		}
		return unix.Chmod(d, dirMode)
	}
	if err := mkdir(ts); err != nil {
		return err
	}
	for rel, f := range want {
		parts := strings.Split(rel, "/")
		d := ts
		for _, part := range parts[:len(parts)-1] {
			d = filepath.Join(d, part)
			if err := mkdir(d); err != nil {
				return err
			}
		}
		path := filepath.Join(ts, rel)
		if err := os.WriteFile(path, f.data, 0o600); err != nil {
			return err
		}
		if err := os.Lchown(path, f.uid, gid); err != nil {
			return err
		}
		if err := unix.Chmod(path, f.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", path, err)
		}
	}
	return nil
}

// linkVisible creates the user-visible symlink "<first component>" -> "..data/<first
// component>" for every wanted file that lacks one.
func linkVisible(dir string, want map[string]file) error {
	for top := range topNames(want) {
		path := filepath.Join(dir, top)
		if _, err := os.Lstat(path); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataLink, top), path); err != nil {
			return err
		}
	}
	return nil
}

// prune removes the visible links no longer wanted and every timestamped directory but the
// current one, including those left by an interrupted write.
func prune(dir, current string, want map[string]file) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	top := topNames(want)
	var errs []error
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == dataLink || name == current:
		case strings.HasPrefix(name, ".."):
			errs = append(errs, os.RemoveAll(filepath.Join(dir, name)))
		case e.Type()&fs.ModeSymlink != 0 && !top[name]:
			errs = append(errs, os.Remove(filepath.Join(dir, name)))
		}
	}
	return errors.Join(errs...)
}

func topNames(want map[string]file) map[string]bool {
	top := make(map[string]bool, len(want))
	for rel := range want {
		first, _, _ := strings.Cut(rel, "/")
		top[first] = true
	}
	return top
}
