package shimbin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	v1 := []byte("#!/bin/sh\necho v1\n")
	p1, err := Install(dir, v1, sum(v1))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(p1), ProgramName+"-") || filepath.Dir(p1) != dir {
		t.Errorf("installed as %s", p1)
	}
	check := func(path string, want []byte) os.FileInfo {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s mode %v, want 0755", path, fi.Mode().Perm())
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, want) {
			t.Errorf("%s holds %q, want %q", path, b, want)
		}
		return fi
	}
	fi := check(p1, v1)

	// Installing the same program again reuses the file.
	again, err := Install(dir, v1, sum(v1))
	if err != nil || again != p1 {
		t.Fatalf("second install: %s, %v", again, err)
	}
	if fi2, _ := os.Stat(p1); fi2.Sys().(*syscall.Stat_t).Ino != fi.Sys().(*syscall.Stat_t).Ino {
		t.Error("an intact program was rewritten")
	}

	// A damaged file (truncated by a crash, edited by hand) is replaced.
	if err := os.WriteFile(p1, []byte("garbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(dir, v1, sum(v1)); err != nil {
		t.Fatal(err)
	}
	check(p1, v1)
	if err := os.Chmod(p1, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(dir, v1, sum(v1)); err != nil {
		t.Fatal(err)
	}
	check(p1, v1)

	// An upgrade installs under a new name and removes the old program and stray temp files,
	// but leaves other files alone.
	if err := os.WriteFile(filepath.Join(dir, "."+ProgramName+"-123.tmp"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	v2 := []byte("#!/bin/sh\necho v2\n")
	p2, err := Install(dir, v2, sum(v2))
	if err != nil {
		t.Fatal(err)
	}
	if p2 == p1 {
		t.Fatal("two programs installed under one name")
	}
	check(p2, v2)
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 2 || names[0] != filepath.Base(p2) || names[1] != "other" {
		t.Errorf("after the upgrade the directory holds %v", names)
	}

	if _, err := Install(dir, nil, sum(nil)); err == nil {
		t.Error("an empty program was installed")
	}
	if _, err := Install(dir, v1, "abc"); err == nil {
		t.Error("a malformed checksum was accepted")
	}
	other := t.TempDir()
	if _, err := Install(other, v1, sum(v2)); err == nil {
		t.Error("a program was installed under another program's checksum")
	}
	if ents, _ := os.ReadDir(other); len(ents) != 0 {
		t.Errorf("a failed install left %v", ents)
	}
}

// TestEmbedded checks the payload is whatever the Makefile put there: nothing in a clean
// clone, else an ELF executable.
func TestEmbedded(t *testing.T) {
	b, s := Embedded()
	if b == nil {
		if _, err := payload.ReadFile("payload/README.md"); err != nil {
			t.Fatalf("the placeholder is not embedded: %v", err)
		}
		return
	}
	if !bytes.HasPrefix(b, []byte("\x7fELF")) {
		t.Errorf("the embedded shim is not an ELF executable (%d bytes)", len(b))
	}
	if s != sum(b) {
		t.Errorf("the embedded checksum %s is not the program's %s: rebuild it with make", s, sum(b))
	}
}
