package container

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// mountOf returns the mount point holding path and its optional fields from
// /proc/self/mountinfo ("shared:N", "master:N", ...).
func mountOf(path string) (point string, optional []string, err error) {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		mp := fields[4]
		if mp != "/" && path != mp && !strings.HasPrefix(path, mp+"/") {
			continue
		}
		// The last match of the longest mount point is the one on top.
		if len(mp) >= len(point) {
			point, optional = mp, nil
			for _, o := range fields[6:] {
				if o == "-" {
					break
				}
				optional = append(optional, o)
			}
		}
	}
	return point, optional, sc.Err()
}

// checkPropagationSource refuses a bind whose host side cannot carry the propagation asked
// for, as containerd does: bidirectional needs the source on a shared mount, host-to-
// container on a shared or slave one (the kubelet makes its volume directories so).
// Without that check the container would start and silently see nothing propagate.
func checkPropagationSource(src string, p runtimeapi.MountPropagation) error {
	if p != runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL && p != runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER {
		return nil
	}
	point, optional, err := mountOf(src)
	if err != nil {
		return fmt.Errorf("mount propagation of %s: %w", src, err)
	}
	var shared, slave bool
	for _, o := range optional {
		shared = shared || strings.HasPrefix(o, "shared:")
		slave = slave || strings.HasPrefix(o, "master:")
	}
	switch {
	case p == runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL && !shared:
		return fmt.Errorf("bidirectional mount of %s: it is on mount %s, which is not a shared mount: %w", src, point, errdefs.ErrFailedPrecondition)
	case p == runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER && !shared && !slave:
		return fmt.Errorf("host-to-container mount of %s: it is on mount %s, which is neither shared nor slave: %w", src, point, errdefs.ErrFailedPrecondition)
	}
	return nil
}
