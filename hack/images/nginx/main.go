// Command nginx stands in for nginx in critest's e2e-test-images/nginx image: critest looks
// for what nginx leaves behind rather than talking to it beyond HTTP — a process named nginx
// whose command line reads "nginx: master process ...", its pid in /var/run/nginx.pid, and a
// welcome page on port 80.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
)

const title = "nginx: master process"

func main() {
	port := flag.Int("port", 80, "port to serve on")
	flag.String("g", "", "global directives, accepted as nginx does and ignored")
	flag.Parse()
	if !strings.HasPrefix(os.Args[0], title) {
		// nginx rewrites its argv; a re-exec with a new argv[0] gives /proc/PID/cmdline the
		// same text while the comm stays "nginx" (the executable's name).
		exe, err := os.Executable()
		if err == nil {
			err = syscall.Exec(exe, append([]string{title + " nginx -g daemon off;"}, os.Args[1:]...), os.Environ())
		}
		fmt.Fprintln(os.Stderr, "nginx: re-exec:", err)
		os.Exit(1)
	}
	if err := os.MkdirAll("/var/run", 0o755); err == nil {
		_ = os.WriteFile("/var/run/nginx.pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>")
	})
	fmt.Fprintf(os.Stderr, "nginx: serving on port %d\n", *port)
	if err := http.ListenAndServe(fmt.Sprintf(":%d", *port), nil); err != nil {
		fmt.Fprintln(os.Stderr, "nginx:", err)
		os.Exit(1)
	}
}
