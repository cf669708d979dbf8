package shim

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the shim program small: every container runs one, so a heavy
// import (client-go, grpc, etcd, even net/http) would cost memory and start time per
// container. The allowed set outside the standard library is this package and x/sys.
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the shim's dependencies: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}",
		"./cmd/nanokube-shim").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"golang.org/x/sys/unix":                                                true,
		"github.com/nanokube/nanokube/internal/runtime/shim":                   true,
		"github.com/nanokube/nanokube/internal/runtime/shim/cmd/nanokube-shim": true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("the shim program imports %s; keep it to the standard library and golang.org/x/sys", p)
		}
	}
	std, err := exec.Command(goBin, "list", "-deps", "./cmd/nanokube-shim").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, std)
	}
	// Standard packages that would each add megabytes the shim has no use for.
	for _, heavy := range []string{"net/http", "crypto/tls", "log/slog", "text/template"} {
		for _, p := range strings.Fields(string(std)) {
			if p == heavy {
				t.Errorf("the shim program imports %s", heavy)
			}
		}
	}
}
