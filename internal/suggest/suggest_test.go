package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"bs", "bs", 0},
		{"blocksise", "blocksize", 1},
		{"namspaces", "namespaces", 1},
		{"kitten", "sitting", 3},
		{"ab", "ba", 2},
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := Distance(tc.b, tc.a); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"listen", "namespaces", "subsystems", "log_level"}
	for _, tc := range []struct{ name, want string }{
		{"namspaces", "namespaces"},
		{"listn", "listen"},
		{"loglevel", "log_level"},
		{"transport", ""}, // nothing near
		{"listen", "listen"},
	} {
		if got := Closest(tc.name, names, 4); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := Closest("ab", []string{"ax", "ay"}, 4); got != "ax" {
		t.Errorf("a tie goes to %q, want the first, ax", got)
	}
}
