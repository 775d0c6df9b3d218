package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
)

// NewLogHandler returns the daemons' log handler on w: one line per
// record, text (slog's key=value) or JSON, at level and above. With
// syslogPrefix each line starts with the record's syslog priority, "<3>"
// for errors, "<4>" warnings, "<6>" info and "<7>" debug, which journald
// reads off a stream connected to it and keeps as the entry's PRIORITY
// (systemd's SyslogLevelPrefix=, on by default), so that journalctl -p
// and its colours work; pass JournalStream(f) for the file w writes to.
func NewLogHandler(w io.Writer, json bool, level slog.Leveler, syslogPrefix bool) slog.Handler {
	var pw *priorityWriter
	if syslogPrefix {
		pw = &priorityWriter{w: w}
		w = pw
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if json {
		h = slog.NewJSONHandler(w, opts)
	}
	if pw == nil {
		return h
	}
	return &priorityHandler{h: h, pw: pw}
}

// Priority is the syslog priority of a log level (RFC 5424: 3 error,
// 4 warning, 6 informational, 7 debug).
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

// priorityHandler writes each record through its slog handler h, whose
// one Write per record priorityWriter prefixes with the record's
// priority: the handlers made by WithAttrs and WithGroup share pw, whose
// mutex holds the priority from Handle to that Write.
type priorityHandler struct {
	h  slog.Handler
	pw *priorityWriter
}

type priorityWriter struct {
	mu  sync.Mutex
	w   io.Writer
	pri int    // the priority of the record being written; guarded by mu
	buf []byte // guarded by mu
}

func (h *priorityHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.h.Enabled(ctx, l)
}

func (h *priorityHandler) Handle(ctx context.Context, r slog.Record) error {
	h.pw.mu.Lock()
	defer h.pw.mu.Unlock()
	h.pw.pri = Priority(r.Level)
	return h.h.Handle(ctx, r)
}

func (h *priorityHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &priorityHandler{h: h.h.WithAttrs(as), pw: h.pw}
}

func (h *priorityHandler) WithGroup(name string) slog.Handler {
	return &priorityHandler{h: h.h.WithGroup(name), pw: h.pw}
}

// Write is called by the slog handler with one whole line, inside
// priorityHandler.Handle.
func (pw *priorityWriter) Write(b []byte) (int, error) {
	pw.buf = append(append(append(pw.buf[:0], '<'), strconv.Itoa(pw.pri)...), '>')
	pw.buf = append(pw.buf, b...)
	if _, err := pw.w.Write(pw.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

// JournalStream reports whether f is connected to journald: systemd sets
// JOURNAL_STREAM to the device and inode ("DEV:INODE") of the stream it
// gives a service's stdout and stderr (StandardError=journal, the
// default), and a file with those is that stream (not, say, a terminal or
// a file the output was redirected to since).
func JournalStream(f *os.File) bool {
	dev, ino, ok := strings.Cut(os.Getenv("JOURNAL_STREAM"), ":")
	if !ok || f == nil {
		return false
	}
	d, err1 := strconv.ParseUint(dev, 10, 64)
	i, err2 := strconv.ParseUint(ino, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	fd, fi, ok := fileID(f)
	return ok && fd == d && fi == i
}
