package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// unpackLayer writes the tar stream r into dir, an empty directory, as an overlayfs layer:
// OCI whiteout files become 0:0 character devices and opaque markers become the
// trusted.overlay.opaque attribute. Entries may not escape dir, directly or through a symlink.
func unpackLayer(dir string, r io.Reader) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		path  string
		mtime time.Time
	}
	var dirs []dirTime
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read layer tar: %w", err)
		}
		rel := filepath.Clean("/" + hdr.Name)
		if rel == "/" {
			continue
		}
		parent, base := filepath.Split(rel)
		if err := checkNoSymlink(dir, parent); err != nil {
			return err
		}
		target := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Join(dir, parent), 0o755); err != nil {
			return err
		}
		if base == whiteoutOpaque {
			if err := unix.Setxattr(filepath.Join(dir, parent), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				return fmt.Errorf("opaque whiteout %s: %w", parent, err)
			}
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			wh := filepath.Join(dir, parent, strings.TrimPrefix(base, whiteoutPrefix))
			_ = os.RemoveAll(wh)
			if err := unix.Mknod(wh, unix.S_IFCHR, 0); err != nil {
				return fmt.Errorf("whiteout %s: %w", wh, err)
			}
			continue
		}
		if fi, err := os.Lstat(target); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(target, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
			dirs = append(dirs, dirTime{target, hdr.ModTime})
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", rel, err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src := filepath.Clean("/" + hdr.Linkname)
			if err := checkNoSymlink(dir, src); err != nil {
				return err
			}
			if err := os.Link(filepath.Join(dir, src), target); err != nil {
				return fmt.Errorf("hard link %s -> %s: %w", rel, hdr.Linkname, err)
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			m := mode
			switch hdr.Typeflag {
			case tar.TypeChar:
				m |= unix.S_IFCHR
			case tar.TypeBlock:
				m |= unix.S_IFBLK
			default:
				m |= unix.S_IFIFO
			}
			if err := unix.Mknod(target, m, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
				return fmt.Errorf("mknod %s: %w", rel, err)
			}
		default:
			continue // pax headers and the like carry nothing to write
		}
		if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("chown %s: %w", rel, err)
		}
		if hdr.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(target, os.FileMode(mode&0o777)|modeBits(mode)); err != nil {
				return err
			}
			for k, v := range hdr.PAXRecords {
				if attr, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
					_ = unix.Lsetxattr(target, attr, []byte(v), 0)
				}
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.AccessTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		if hdr.AccessTime.IsZero() {
			ts[0] = ts[1]
		}
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		t := unix.NsecToTimespec(dirs[i].mtime.UnixNano())
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i].path, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

func modeBits(m uint32) os.FileMode {
	var fm os.FileMode
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// checkNoSymlink fails if any existing component of rel under dir is a symlink, so that a
// layer cannot write outside dir through a link it planted earlier.
func checkNoSymlink(dir, rel string) error {
	p := dir
	for _, c := range strings.Split(strings.Trim(rel, "/"), "/") {
		if c == "" {
			continue
		}
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("layer entry under %q goes through a symlink", rel)
		}
	}
	return nil
}
