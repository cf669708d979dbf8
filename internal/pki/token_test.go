package pki_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nanokube/nanokube/internal/pki"
)

func writeTokenFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadTokenFile(t *testing.T) {
	const good = `# static tokens
t1,alice,uid-1,"system:masters,dev"

  t2 , bob , uid-2
   
t3,carol,uid-3, "a, b,,"
`
	a, err := pki.LoadTokenFile(writeTokenFile(t, good))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		token  string
		want   pki.UserInfo
		wantOK bool
	}{
		{token: "t1", want: pki.UserInfo{Name: "alice", UID: "uid-1", Groups: []string{"system:masters", "dev"}}, wantOK: true},
		{token: "t2", want: pki.UserInfo{Name: "bob", UID: "uid-2"}, wantOK: true},
		{token: "t3", want: pki.UserInfo{Name: "carol", UID: "uid-3", Groups: []string{"a", "b"}}, wantOK: true},
		{token: "t"},
		{token: "t1 "},
		{token: "T1"},
		{token: ""},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			got, ok := a.Authenticate(tt.token)
			if ok != tt.wantOK || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Authenticate(%q) = %+v, %v; want %+v, %v", tt.token, got, ok, tt.want, tt.wantOK)
			}
		})
	}

	// Callers own the returned groups.
	u, _ := a.Authenticate("t1")
	u.Groups[0] = "mutated"
	if u, _ := a.Authenticate("t1"); u.Groups[0] != "system:masters" {
		t.Error("mutating a returned UserInfo changed the authenticator")
	}
}

func TestLoadTokenFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{name: "too few fields", content: "t1,alice,u1\n\nt2,bob\n", want: "line 3"},
		{name: "empty token", content: "# header\n,alice,u1\n", want: "line 2: empty token"},
		{name: "empty user", content: "t1, ,u1\n", want: "line 1: empty user name"},
		{name: "duplicate token", content: "t1,alice,u1\nt2,bob,u2\nt1,carol,u3\n", want: "line 3: token already used on line 1"},
		{name: "bad quoting", content: "t1,alice,u1\nt2,bob,u2,\"g1\n", want: "line 2"},
		{name: "stray quote", content: "t1,al\"ice,u1\n", want: "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTokenFile(t, tt.content)
			_, err := pki.LoadTokenFile(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v, want one naming %s and %q", err, path, tt.want)
			}
		})
	}
	if _, err := pki.LoadTokenFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("loading a missing file succeeded")
	}
}

func TestEnsureTokenFile(t *testing.T) {
	tests := []struct {
		name     string
		existing string // "" means no file
		want     string // "" means a fresh random token
	}{
		{name: "missing"},
		{name: "existing admin token", existing: "viewer,v,v,\"dev\"\nadm,root,root,\"dev,system:masters\"\n", want: "adm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "auth", "tokens.csv")
			if tt.existing != "" {
				os.MkdirAll(filepath.Dir(path), 0o700)
				os.WriteFile(path, []byte(tt.existing), 0o600)
			}
			token, err := pki.EnsureTokenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && token != tt.want {
				t.Errorf("token %q, want %q", token, tt.want)
			}
			if tt.want == "" && len(token) < 32 {
				t.Errorf("token %q is too short", token)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o600 {
				t.Errorf("stat: %v, %v", fi.Mode(), err)
			}
			again, err := pki.EnsureTokenFile(path)
			if err != nil || again != token {
				t.Errorf("second EnsureTokenFile = %q, %v; want %q", again, err, token)
			}
			a, err := pki.LoadTokenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if u, ok := a.Authenticate(token); !ok || !strings.Contains(strings.Join(u.Groups, ","), pki.MastersGroup) {
				t.Errorf("Authenticate(token) = %+v, %v", u, ok)
			}
		})
	}

	path := writeTokenFile(t, "viewer,v,v\n")
	if token, err := pki.EnsureTokenFile(path); err != nil || token != "" {
		t.Errorf("file without admin token: %q, %v", token, err)
	}
}
