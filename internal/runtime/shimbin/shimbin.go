// Package shimbin carries the dedicated shim program (internal/runtime/shim/cmd/nanokube-shim)
// inside the nanokube binary and installs it on a node, so nanokube stays one file for its
// users while every container runs a shim of a few MB instead of the whole binary.
//
// The program is embedded from payload/, which the Makefile fills before it builds
// bin/nanokube. A plain `go build` or `go test` of a clean clone embeds only the
// placeholder: Embedded then returns nil and the runtime re-executes its own binary, which
// can act as a shim too (see package container).
package shimbin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

//go:embed payload
var payload embed.FS

// ProgramName is the shim's file name in payload/, and the prefix of its installed name.
const ProgramName = "nanokube-shim"

// sumSuffix names the file beside the program in payload/ that holds its SHA-256 in hex,
// written by the Makefile so that a starting runtime need not read the embedded program's
// pages (which would then count in its resident memory) just to learn its name.
const sumSuffix = ".sha256"

// Embedded returns the shim program built into this binary and its SHA-256 (hex), or nil
// if there is none. The slice is the binary's read-only data: callers must not modify it.
func Embedded() (program []byte, sum string) {
	b, err := payload.ReadFile("payload/" + ProgramName)
	if err != nil || len(b) == 0 {
		return nil, ""
	}
	if s, err := payload.ReadFile("payload/" + ProgramName + sumSuffix); err == nil {
		if sum := strings.TrimSpace(string(s)); len(sum) == 2*sha256.Size {
			if _, err := hex.DecodeString(sum); err == nil {
				return b, sum
			}
		}
	}
	h := sha256.Sum256(b)
	return b, hex.EncodeToString(h[:])
}

// Install makes program, whose SHA-256 is sum (hex), available as an executable under dir
// and returns its path. The file is named after the checksum, so runtimes of different
// versions sharing a root never overwrite a program another one's shims were started
// from, and an existing file is reused only if its content still has that checksum. A new
// file is written aside and renamed into place, so no one ever executes a half-written
// program. Programs under other names are removed: running shims keep their (unlinked)
// executable.
func Install(dir string, program []byte, sum string) (string, error) {
	if len(program) == 0 {
		return "", fmt.Errorf("install shim: empty program")
	}
	want, err := hex.DecodeString(sum)
	if err != nil || len(want) != sha256.Size {
		return "", fmt.Errorf("install shim: checksum %q is not a hex SHA-256", sum)
	}
	name := ProgramName + "-" + sum[:16]
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install shim: %w", err)
	}
	if !installed(path, want) {
		if err := write(dir, path, program); err != nil {
			return "", fmt.Errorf("install shim: %w", err)
		}
		// A checksum that does not match the program (a payload rebuilt by hand without
		// its checksum) would have us rewrite the file at every start, and name it wrongly.
		if !installed(path, want) {
			_ = os.Remove(path)
			return "", fmt.Errorf("install shim: the program does not have checksum %s", sum)
		}
	}
	removeOthers(dir, name)
	return path, nil
}

// installed reports whether path is an executable regular file holding the program whose
// SHA-256 is sum.
func installed(path string, sum []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		return false
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return bytes.Equal(h.Sum(nil), sum)
}

func write(dir, path string, program []byte) error {
	f, err := os.CreateTemp(dir, "."+ProgramName+"-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := f.Write(program); err != nil {
		f.Close()
		return err
	}
	// CreateTemp makes the file 0600; the umask does not apply to Chmod.
	if err := f.Chmod(0o755); err != nil {
		f.Close()
		return err
	}
	// Durable before it is visible: after a crash the name holds the whole program or
	// nothing.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// removeOthers deletes earlier versions of the program and temporary files left by an
// install that crashed. Failures are harmless: the files only take space.
func removeOthers(dir, keep string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if n == keep || e.IsDir() {
			continue
		}
		if strings.HasPrefix(n, ProgramName+"-") || (strings.HasPrefix(n, "."+ProgramName+"-") && strings.HasSuffix(n, ".tmp")) {
			_ = os.Remove(filepath.Join(dir, n))
		}
	}
}
