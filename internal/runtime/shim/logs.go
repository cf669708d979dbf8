package shim

import (
	"bufio"
	"errors"
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

// copyLines reads r until EOF, writing each line as a record of stream and handing the raw
// bytes to tee (attached clients) if set.
func (w *logWriter) copyLines(stream string, r io.Reader, tee func([]byte)) {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if tee != nil {
				tee(line)
			}
			if line[len(line)-1] == '\n' {
				w.write(stream, false, line[:len(line)-1])
			} else {
				// A full buffer or the last unterminated line.
				w.write(stream, errors.Is(err, bufio.ErrBufferFull), line)
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
