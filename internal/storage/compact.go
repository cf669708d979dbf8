package storage

import (
	"context"
	"log/slog"
	"time"
)

// RunCompactor compacts etcd history every interval, to the revision seen one interval
// before, so that watches lagging by less than an interval can still resume from etcd.
func (s *Store) RunCompactor(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, err := s.Revision(ctx)
		if err != nil {
			log.Warn("compaction: read revision", "err", err)
			continue
		}
		if last > 0 {
			if err := s.Compact(ctx, last); err != nil {
				log.Warn("compaction failed", "revision", last, "err", err)
			} else {
				log.Debug("compacted etcd", "revision", last)
			}
		}
		last = cur
	}
}
