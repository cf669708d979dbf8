package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// LogOptions configure the audit log file.
type LogOptions struct {
	// Path is the file events are appended to; "-" writes them to stdout.
	Path string
	// MaxSizeMB rotates the file once it would grow past this many megabytes (0: never).
	MaxSizeMB int
	// MaxBackups is how many rotated files to keep (0: all of them).
	MaxBackups int
}

// Log writes events as JSON lines. Each event is written and flushed under a lock, so a line
// is never interleaved with another and a reader sees every event as soon as Write returns.
type Log struct {
	opts LogOptions
	now  func() time.Time

	mu   sync.Mutex
	f    *os.File // nil for stdout
	w    *bufio.Writer
	size int64
}

// OpenLog opens (creating, 0600) or, for "-", wraps stdout.
func OpenLog(opts LogOptions) (*Log, error) {
	if opts.Path == "" {
		return nil, fmt.Errorf("audit log: a path is required")
	}
	if opts.MaxSizeMB < 0 || opts.MaxBackups < 0 {
		return nil, fmt.Errorf("audit log: --audit-log-maxsize and --audit-log-maxbackup must not be negative")
	}
	l := &Log{opts: opts, now: time.Now}
	if opts.Path == "-" {
		l.w = bufio.NewWriter(os.Stdout)
		return l, nil
	}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	if err := os.MkdirAll(filepath.Dir(l.opts.Path), 0o700); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	f, err := os.OpenFile(l.opts.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	l.f, l.size = f, st.Size()
	l.w = bufio.NewWriterSize(f, 64<<10)
	return nil
}

// Write appends one event.
func (l *Log) Write(ev *auditv1.Event) error {
	line, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("audit event: %w", err)
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return io.ErrClosedPipe
	}
	if l.f != nil && l.opts.MaxSizeMB > 0 && l.size > 0 && l.size+int64(len(line)) > int64(l.opts.MaxSizeMB)<<20 {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.w.Write(line)
	l.size += int64(n)
	if err != nil {
		return err
	}
	return l.w.Flush()
}

// rotate renames the current file to <name>-<time><ext>, as kube-apiserver's lumberjack
// does, starts a new one and removes backups beyond MaxBackups.
func (l *Log) rotate() error {
	if err := l.w.Flush(); err != nil {
		return err
	}
	l.f.Close()
	ext := filepath.Ext(l.opts.Path)
	base := strings.TrimSuffix(l.opts.Path, ext)
	backup := base + "-" + l.now().UTC().Format("2006-01-02T15-04-05.000") + ext
	if err := os.Rename(l.opts.Path, backup); err != nil {
		return fmt.Errorf("audit log rotate: %w", err)
	}
	if err := l.open(); err != nil {
		return err
	}
	if l.opts.MaxBackups > 0 {
		old, _ := filepath.Glob(base + "-*" + ext)
		sort.Strings(old) // the time stamps sort in time order
		for len(old) > l.opts.MaxBackups {
			os.Remove(old[0])
			old = old[1:]
		}
	}
	return nil
}

// Close flushes and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return nil
	}
	err := l.w.Flush()
	l.w = nil
	if l.f != nil {
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
