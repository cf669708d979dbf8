package shim

import (
	"bytes"
	"io"
	"os"
	"sync"
	"time"
)

// maxLogLine is where long lines are split into partial (P) records, as the kubelet does.
const maxLogLine = 16 * 1024

// logWriter writes CRI-format log records ("<RFC3339Nano> <stream> <P|F> <line>") to a file
// that can be reopened after rotation.
type logWriter struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func openLog(path string) (*logWriter, error) {
	w := &logWriter{path: path}
	if path == "" {
		return w, nil
	}
	return w, w.reopen()
}

func (w *logWriter) reopen() error {
	if w.path == "" {
		return nil
	}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	w.mu.Lock()
	old := w.f
	w.f = f
	w.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (w *logWriter) write(stream string, partial bool, line []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return
	}
	tag := " F "
	if partial {
		tag = " P "
	}
	buf := make([]byte, 0, len(line)+48)
	buf = time.Now().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, ' ')
	buf = append(buf, stream...)
	buf = append(buf, tag...)
	buf = append(buf, line...)
	buf = append(buf, '\n')
	_, _ = w.f.Write(buf)
}

func (w *logWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// copyLines reads r until EOF, handing the bytes to tee (attached clients) as soon as they
// arrive and writing each line as a record of stream. Attached clients must not wait for a
// newline: a shell prompt or `echo -n` output has none (critest's attach spec reads
// "hello" from `echo -n hello`). Lines longer than maxLogLine become partial (P) records; an
// unterminated last line is written at EOF.
func (w *logWriter) copyLines(stream string, r io.Reader, tee func([]byte)) {
	buf := make([]byte, 32<<10)
	var pending []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if tee != nil {
				tee(buf[:n])
			}
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i >= 0 && i <= maxLogLine {
					w.write(stream, false, pending[:i])
					pending = pending[i+1:]
				} else if len(pending) >= maxLogLine {
					w.write(stream, true, pending[:maxLogLine])
					pending = pending[maxLogLine:]
				} else {
					break
				}
			}
			// Keep the unterminated rest in a buffer of its own size, not the grown one.
			pending = append([]byte(nil), pending...)
		}
		if err != nil {
			if len(pending) > 0 {
				w.write(stream, false, pending)
			}
			return
		}
	}
}
