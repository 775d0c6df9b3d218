package target

import (
	"testing"
	"time"
)

// TestLogLimiter: a burst of ten lines, then one a second; each line that
// goes out says how many were held back before it.
func TestLogLimiter(t *testing.T) {
	clock := time.Unix(1000, 0)
	l := LogLimiter{now: func() time.Time { return clock }}
	for i := range logBurst {
		if ok, _ := l.Allow(); !ok {
			t.Fatalf("line %d of the burst held back", i)
		}
	}
	for range 5 {
		if ok, _ := l.Allow(); ok {
			t.Fatal("a line past the burst went out")
		}
	}
	clock = clock.Add(time.Second)
	if ok, dropped := l.Allow(); !ok || dropped != 5 {
		t.Fatalf("a second later: ok %v, %d held back; want true, 5", ok, dropped)
	}
	if ok, _ := l.Allow(); ok {
		t.Fatal("two lines in the same second")
	}
	if n := l.Suppressed(); n != 6 {
		t.Fatalf("Suppressed %d, want 6", n)
	}
}
