package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A server refused at start says why in one line, exits non-zero and writes nothing.
func TestServerBadInput(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port

	newer := t.TempDir()
	if err := os.WriteFile(filepath.Join(newer, "version"), []byte(`{"kind":"server","format":99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	agentDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(agentDir, "version"), []byte(`{"kind":"agent","format":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir string
		port      int
		want      string
	}{
		{"port in use", filepath.Join(t.TempDir(), "fresh"), busy, "choose another --secure-port"},
		{"newer data dir", newer, 0, "written by a newer nanokube"},
		{"agent's data dir", agentDir, 0, "agent's data dir"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, cluster.bin, "server", "--data-dir", tc.dir, "--bind-address", "127.0.0.1",
			"--secure-port", fmt.Sprint(tc.port), "--disable-agent")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		if err == nil {
			t.Errorf("%s: the server started", tc.name)
			continue
		}
		if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%s: stderr %q, want one line saying %q", tc.name, stderr.String(), tc.want)
		}
		entries, _ := os.ReadDir(tc.dir)
		if len(entries) > 1 || (len(entries) == 1 && entries[0].Name() != "version") {
			t.Errorf("%s: the server wrote into %s: %v", tc.name, tc.dir, entries)
		}
	}
}
