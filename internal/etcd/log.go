package etcd

import (
	"context"
	"log/slog"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapToSlog routes the embedded member's zap logs into the process's slog logger: warnings
// and errors only, as key/value pairs, without zap's stack traces.
func zapToSlog(log *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{log: log, min: zapcore.WarnLevel})
}

type slogCore struct {
	log    *slog.Logger
	min    zapcore.Level
	fields []zapcore.Field
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.min }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, min: c.min, fields: append(append([]zapcore.Field{}, c.fields...), fields...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field{}, c.fields...), fields...) {
		f.AddTo(enc)
	}
	// Listeners closing during shutdown are reported as errors by etcd, the storage-version
	// monitor complains once when it runs before the first term is written (it retries), and
	// a single embedded member warns about settings it is meant to have: none of that is news
	// to a user.
	if err, ok := enc.Fields["error"].(string); ok && (strings.Contains(strings.ToLower(err), "closed") || strings.Contains(err, "missing term information")) {
		return nil
	}
	if strings.HasPrefix(e.Message, "Running http and grpc server on single port") || strings.HasPrefix(e.Message, "simple token is not cryptographically signed") {
		return nil
	}
	args := make([]any, 0, 2*len(enc.Fields))
	for k, v := range enc.Fields {
		args = append(args, k, v)
	}
	level := slog.LevelWarn
	if e.Level >= zapcore.ErrorLevel {
		level = slog.LevelError
	}
	c.log.Log(context.Background(), level, e.Message, args...)
	return nil
}

func (c *slogCore) Sync() error { return nil }
