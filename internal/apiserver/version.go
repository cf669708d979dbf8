package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"

	"k8s.io/apimachinery/pkg/version"
)

// Version is the Kubernetes version nanokube's API is compatible with.
const Version = "v1.32.0"

// Info is what /version answers.
func Info() version.Info {
	commit := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	return version.Info{
		Major: "1", Minor: "32", GitVersion: Version + "+nanokube", GitCommit: commit, GitTreeState: "clean",
		BuildDate: "", GoVersion: runtime.Version(), Compiler: runtime.Compiler,
		Platform: fmt.Sprintf("%s/%s", runtime.GOOS, runtime.GOARCH),
	}
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	b, _ := json.MarshalIndent(Info(), "", "  ")
	writeJSON(w, "application/json", b)
}
