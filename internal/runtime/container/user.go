package container

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nanokube/nanokube/internal/runtime/errdefs"
)

// resolveUser turns an image or CRI user ("name", "uid", "name:group", "uid:gid") into ids
// using the container's /etc/passwd and /etc/group, and returns the groups it is a member of.
func resolveUser(rootfs, user string) (uid, gid uint32, additional []uint32, err error) {
	u, g, hasGroup := strings.Cut(user, ":")
	if u == "" {
		u = "0"
	}
	uname := ""
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		uid = uint32(n)
		gid = uint32(n)
		if ent, ok := lookupFile(filepath.Join(rootfs, "etc/passwd"), func(f []string) bool { return f[2] == u }); ok {
			uname = ent[0]
			gid = parseID(ent[3])
		} else {
			gid = 0
			if uid != 0 {
				gid = uid
			}
		}
	} else {
		ent, ok := lookupFile(filepath.Join(rootfs, "etc/passwd"), func(f []string) bool { return f[0] == u })
		if !ok {
			return 0, 0, nil, fmt.Errorf("user %q not found in the image's /etc/passwd: %w", u, errdefs.ErrInvalidArgument)
		}
		uname, uid, gid = ent[0], parseID(ent[2]), parseID(ent[3])
	}
	if hasGroup {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			gid = uint32(n)
		} else {
			ent, ok := lookupFile(filepath.Join(rootfs, "etc/group"), func(f []string) bool { return f[0] == g })
			if !ok {
				return 0, 0, nil, fmt.Errorf("group %q not found in the image's /etc/group: %w", g, errdefs.ErrInvalidArgument)
			}
			gid = parseID(ent[2])
		}
	}
	if uname != "" {
		forEachLine(filepath.Join(rootfs, "etc/group"), func(f []string) {
			if len(f) < 4 {
				return
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == uname {
					if id := parseID(f[2]); id != gid {
						additional = append(additional, id)
					}
				}
			}
		})
	}
	return uid, gid, additional, nil
}

func parseID(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

func lookupFile(path string, match func([]string) bool) ([]string, bool) {
	var found []string
	forEachLine(path, func(f []string) {
		if found == nil && len(f) >= 4 && match(f) {
			found = f
		}
	})
	return found, found != nil
}

func forEachLine(path string, fn func([]string)) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
}
