//go:build !race

package jsonstr

import "testing"

func TestAppendDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 256)
	s := "tab\t <&> \u2028 \xff é"
	if n := testing.AllocsPerRun(100, func() {
		buf = Append(buf[:0], s)
	}); n != 0 {
		t.Fatalf("Append allocates %.1f times into a large enough slice; want 0", n)
	}
}
