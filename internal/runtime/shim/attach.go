package shim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The attach socket (AttachSocket in the bundle) carries frames both ways:
//
//	[type byte][length uint32, big endian][payload]
//
// The shim sends FrameStdout and FrameStderr with the container's output from the moment
// the client connects; the client sends FrameStdin, FrameStdinClose and FrameResize
// (payload: width, height as big-endian uint16). The shim closes every attached connection
// once the container has exited and its output is drained, so a client reads EOF then.
const (
	FrameStdin      byte = 0
	FrameStdout     byte = 1
	FrameStderr     byte = 2
	FrameStdinClose byte = 3
	FrameResize     byte = 4

	// AttachSocket is the shim's attach socket, relative to the bundle: a bundle path can
	// exceed the 108 bytes a socket address holds, so both sides reach it relative to a
	// directory (the shim's cwd, or /proc/self/fd/N for the runtime).
	AttachSocket  = "attach.sock"
	consoleSocket = "console.sock"
	maxFrame      = 1 << 20
)

// WriteFrame writes one frame to w.
func WriteFrame(w io.Writer, typ byte, p []byte) error {
	hdr := [5]byte{typ}
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := w.Write(append(hdr[:], p...)); err != nil {
		return err
	}
	return nil
}

// ReadFrame reads one frame from r.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("attach frame of %d bytes is too large", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

// attachHub fans the container's output out to attached clients and their input in.
type attachHub struct {
	l        net.Listener
	stdin    io.Writer // nil when the container has no stdin
	closeIn  func()    // closes the container's stdin (StdinOnce)
	resize   func(w, h uint16)
	mu       sync.Mutex
	clients  map[net.Conn]*sync.Mutex
	finished bool
}

func newAttachHub(l net.Listener) *attachHub {
	return &attachHub{l: l, clients: map[net.Conn]*sync.Mutex{}}
}

func (h *attachHub) serve() {
	for {
		c, err := h.l.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		if h.finished {
			h.mu.Unlock()
			c.Close()
			continue
		}
		h.clients[c] = &sync.Mutex{}
		h.mu.Unlock()
		go h.read(c)
	}
}

func (h *attachHub) read(c net.Conn) {
	for {
		typ, p, err := ReadFrame(c)
		if err != nil {
			return
		}
		switch typ {
		case FrameStdin:
			if h.stdin != nil {
				_, _ = h.stdin.Write(p)
			}
		case FrameStdinClose:
			if h.closeIn != nil {
				h.closeIn()
			}
		case FrameResize:
			if len(p) == 4 && h.resize != nil {
				h.resize(binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]))
			}
		}
	}
}

// broadcast sends output to every client; a client that cannot take it within a few
// seconds is dropped rather than stalling the container.
func (h *attachHub) broadcast(typ byte, p []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c, wmu := range h.clients {
		wmu.Lock()
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		err := WriteFrame(c, typ, p)
		wmu.Unlock()
		if err != nil {
			c.Close()
			delete(h.clients, c)
		}
	}
}

func (h *attachHub) tee(typ byte) func([]byte) {
	return func(p []byte) {
		h.broadcast(typ, append([]byte(nil), p...))
	}
}

// finish closes the listener and every client.
func (h *attachHub) finish() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.finished = true
	h.l.Close()
	for c := range h.clients {
		c.Close()
	}
	h.clients = map[net.Conn]*sync.Mutex{}
}

// receiveConsole accepts runc's connection on l and returns the pty master it sends.
func receiveConsole(l *net.UnixListener) (*os.File, error) {
	c, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) == 0 {
		return nil, errors.New("receive console: no file descriptor in the message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return nil, errors.New("receive console: no file descriptor in the message")
	}
	return os.NewFile(uintptr(fds[0]), string(buf[:n])), nil
}
