package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestLogPriorityPrefix: with the syslog prefix every line starts with its
// level's priority, for loggers made with With and WithGroup too, and for
// records logged at once from many goroutines; the rest of the line is
// the record as the handler writes it.
func TestLogPriorityPrefix(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		var buf bytes.Buffer
		log := slog.New(NewLogHandler(&buf, asJSON, slog.LevelDebug, true))
		sub := log.With("subsys", "nqn.x").WithGroup("g")
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for range 50 {
					log.Error("e", "i", i)
					sub.Warn("w", "i", i)
					log.Info("i", "i", i)
					sub.Debug("d", "i", i)
				}
			})
		}
		wg.Wait()
		want := map[string]string{"e": "<3>", "w": "<4>", "i": "<6>", "d": "<7>"}
		n := 0
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			n++
			line := sc.Text()
			pri, rest := line[:3], line[3:]
			var msg string
			if asJSON {
				var rec map[string]any
				if err := json.Unmarshal([]byte(rest), &rec); err != nil {
					t.Fatalf("json: %q after the prefix: %v", line, err)
				}
				msg, _ = rec["msg"].(string)
			} else {
				_, after, _ := strings.Cut(rest, " msg=")
				msg, _, _ = strings.Cut(after, " ")
			}
			if want[msg] != pri {
				t.Fatalf("json %v: %q: prefix %q, want %q", asJSON, line, pri, want[msg])
			}
		}
		if n != 8*50*4 {
			t.Fatalf("json %v: %d lines, want %d", asJSON, n, 8*50*4)
		}
	}
	// Without it, the handler's lines as they are.
	var buf bytes.Buffer
	slog.New(NewLogHandler(&buf, true, slog.LevelInfo, false)).Info("hello", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "hello" || rec["k"] != 1.0 {
		t.Fatalf("%q: %v", buf.String(), err)
	}
}

func TestPriority(t *testing.T) {
	for l, want := range map[slog.Level]int{slog.LevelError + 4: 3, slog.LevelError: 3, slog.LevelWarn: 4, slog.LevelInfo + 2: 6, slog.LevelInfo: 6, slog.LevelDebug: 7, slog.LevelDebug - 4: 7} {
		if got := Priority(l); got != want {
			t.Errorf("Priority(%v) = %d, want %d", l, got, want)
		}
	}
}

// TestJournalStream: a file is journald's stream when JOURNAL_STREAM
// names its device and inode, and only then.
func TestJournalStream(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other, err := os.Create(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	dev, ino, ok := fileID(f)
	if !ok {
		t.Skip("no device and inode numbers here")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", dev, ino))
	if !JournalStream(f) || JournalStream(other) || JournalStream(nil) {
		t.Fatalf("JOURNAL_STREAM=%s: stream %v, other %v", os.Getenv("JOURNAL_STREAM"), JournalStream(f), JournalStream(other))
	}
	for _, v := range []string{"", "1", "a:b", fmt.Sprintf("%d:%d", dev, ino+1)} {
		t.Setenv("JOURNAL_STREAM", v)
		if JournalStream(f) {
			t.Errorf("JOURNAL_STREAM=%q: the file counts as the journal's stream", v)
		}
	}
}
