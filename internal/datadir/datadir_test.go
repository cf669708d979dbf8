package datadir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	if err := Check(filepath.Join(dir, "missing"), "server"); err != nil {
		t.Errorf("missing dir: %v", err)
	}
	if err := Check(dir, "server"); err != nil {
		t.Errorf("unversioned dir: %v", err)
	}
	if err := Mark(dir, "server"); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir, "server"); err != nil {
		t.Errorf("own dir: %v", err)
	}
	for body, want := range map[string]string{
		`{"kind":"agent","format":1}`:   "agent's data dir",
		`{"kind":"server","format":99}`: "newer nanokube",
		`{"kind":"server","format":0}`:  "cannot read",
		`garbage`:                       "not a nanokube data dir",
	} {
		if err := os.WriteFile(filepath.Join(dir, fileName), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Check(dir, "server"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}
