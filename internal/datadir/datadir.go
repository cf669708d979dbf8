// Package datadir guards nanokube's data directories against being used by a binary that
// does not understand them. A directory holds a small "version" file naming its layout
// format; Check refuses a directory of another format, or one that holds another kind of
// data (an agent's directory given to a server), before anything is written to it.
package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nanokube/nanokube/internal/pki"
)

// Format is the layout this binary reads and writes. Raise it, with a migration, when a
// change would make an older binary misread the directory.
const Format = 1

const fileName = "version"

type stamp struct {
	Kind   string `json:"kind"` // "server" or "agent"
	Format int    `json:"format"`
}

// Check verifies that dir can be used as a data dir of kind by this binary. A missing or
// empty directory is fine; so is one written before the version file existed (it is the
// first format). It writes nothing.
func Check(dir, kind string) error {
	b, err := os.ReadFile(filepath.Join(dir, fileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var s stamp
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s is not a nanokube data dir version file (%v): use another --data-dir", filepath.Join(dir, fileName), err)
	}
	if s.Kind != kind {
		return fmt.Errorf("%s is a nanokube %s's data dir, not a %s's: use another --data-dir", dir, s.Kind, kind)
	}
	switch {
	case s.Format > Format:
		return fmt.Errorf("%s was written by a newer nanokube (data format %d; this binary reads %d): run that version, or use another --data-dir", dir, s.Format, Format)
	case s.Format < Format:
		return fmt.Errorf("%s holds data format %d, which this binary (format %d) cannot read: run an older nanokube, or use another --data-dir", dir, s.Format, Format)
	}
	return nil
}

// Mark records in dir that it holds data of kind in this binary's format.
func Mark(dir, kind string) error {
	b, err := json.Marshal(stamp{Kind: kind, Format: Format})
	if err != nil {
		return err
	}
	return pki.WriteFileAtomic(filepath.Join(dir, fileName), append(b, '\n'), 0o644)
}
