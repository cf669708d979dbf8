package shim

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestLogFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", maxLogLine+10)
	var teed bytes.Buffer
	w.copyLines("stdout", strings.NewReader("one\n\ntwo\n"+long+"\nlast"), func(p []byte) { teed.Write(p) })
	w.close()
	if want := "one\n\ntwo\n" + long + "\nlast"; teed.String() != want {
		t.Errorf("tee got %d bytes, want the raw %d", teed.Len(), len(want))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	want := []struct{ tag, text string }{
		{"F", "one"}, {"F", ""}, {"F", "two"},
		{"P", long[:maxLogLine]}, {"F", long[maxLogLine:]}, {"F", "last"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(lines), len(want), b)
	}
	re := regexp.MustCompile(`^(\S+) stdout ([PF]) (.*)$`)
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("record %d is not CRI format: %.80q", i, l)
		}
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
			t.Errorf("record %d time: %v", i, err)
		}
		if m[2] != want[i].tag || m[3] != want[i].text {
			t.Errorf("record %d: %s %.40q, want %s %.40q", i, m[2], m[3], want[i].tag, want[i].text)
		}
	}
}

func TestLogReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	w, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	w.write("stderr", false, []byte("before"))
	// What the kubelet's log rotation does: rename, then ask for a reopen.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.reopen(); err != nil {
		t.Fatal(err)
	}
	w.write("stderr", false, []byte("after"))
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(old), " stderr F before\n") || !strings.HasSuffix(string(cur), " stderr F after\n") {
		t.Errorf("rotated %q, current %q", old, cur)
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, f := range []struct {
		typ byte
		p   []byte
	}{{FrameStdout, []byte("hello\n")}, {FrameStdinClose, nil}, {FrameResize, []byte{0, 80, 0, 24}}} {
		if err := WriteFrame(&buf, f.typ, f.p); err != nil {
			t.Fatal(err)
		}
		typ, p, err := ReadFrame(&buf)
		if err != nil || typ != f.typ || !bytes.Equal(p, f.p) {
			t.Errorf("round trip of %d %q: %d %q %v", f.typ, f.p, typ, p, err)
		}
	}
	// A length beyond maxFrame is refused before anything is allocated.
	hdr := []byte{FrameStdout, 0xff, 0xff, 0xff, 0xff}
	if _, _, err := ReadFrame(bytes.NewReader(hdr)); err == nil {
		t.Error("oversized frame accepted")
	}
	if _, _, err := ReadFrame(bytes.NewReader(hdr[:3])); err != io.ErrUnexpectedEOF {
		t.Errorf("short header: %v", err)
	}
}
