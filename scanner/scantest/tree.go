// Package scantest writes file trees described as data, so that tests read
// like specifications: Dir{"a.txt": File{Content: "x"}, "sub": Dir{...}}.
package scantest

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"
)

// Node is a File, Dir, Symlink or Fifo.
type Node interface {
	create(t testing.TB, path string)
}

// Dir is a folder: names to nodes.
type Dir map[string]Node

// File is a regular file. A zero Mode means 0644; a zero Mtime leaves the
// time of writing.
type File struct {
	Content string
	Mode    fs.FileMode
	Mtime   time.Time
}

// Symlink is a symbolic link to Target.
type Symlink struct{ Target string }

// Fifo is a named pipe.
type Fifo struct{}

// Create writes tree under root, which must exist.
func Create(t testing.TB, root string, tree Dir) {
	t.Helper()
	tree.create(t, root)
}

func (d Dir) create(t testing.TB, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(d))
	for name := range d {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		d[name].create(t, filepath.Join(path, name))
	}
}

func (f File) create(t testing.TB, path string) {
	t.Helper()
	mode := f.Mode
	if mode == 0 {
		mode = 0o644
	}
	if err := os.WriteFile(path, []byte(f.Content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if !f.Mtime.IsZero() {
		if err := os.Chtimes(path, f.Mtime, f.Mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func (s Symlink) create(t testing.TB, path string) {
	t.Helper()
	if err := os.Symlink(s.Target, path); err != nil {
		t.Fatal(err)
	}
}

func (Fifo) create(t testing.TB, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Files returns the regular files under root, by '/'-separated relative
// path, with their contents.
func Files(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Write replaces the content of root/rel, creating folders as needed.
func Write(t testing.TB, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Keys returns the sorted keys of m.
func Keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
