package local

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestReadState(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, file string
		wantErr    string
	}{
		{name: "a fleet", file: `{"version":1,"phase":"Ready"}`},
		{name: "trailing newline", file: "{\"version\":1}\n"},
		{name: "not JSON", file: `{"version":`, wantErr: "is corrupted"},
		{name: "a second object after the first", file: `{"version":1}{"version":1}`, wantErr: "is corrupted"},
		{name: "a stray brace after the object", file: `{"version":1}}`, wantErr: "is corrupted"},
		{name: "another version", file: `{"version":2}`, wantErr: "has version 2"},
		{name: "null", file: `null`, wantErr: "has version 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(StatePath(dir), []byte(c.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadState(dir)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), StatePath(dir)) {
				t.Fatalf("err = %v, want %q naming %s", err, c.wantErr, StatePath(dir))
			}
		})
	}
	t.Run("no file", func(t *testing.T) {
		t.Parallel()
		if _, err := ReadState(t.TempDir()); !errors.Is(err, ErrNoFleet) {
			t.Fatalf("err = %v, want ErrNoFleet", err)
		}
	})
}
