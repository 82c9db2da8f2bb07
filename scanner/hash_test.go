package scanner

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zeebo/blake3"
)

func TestHashFileIsBLAKE3OfContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	content := make([]byte, 3*hashBufSize+17) // several reads
	for i := range content {
		content[i] = byte(i * 7)
	}
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	d, st, err := HashFile(OS{}, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := Digest(blake3.Sum256(content)); d != want {
		t.Fatalf("digest %s, want %s", d, want)
	}
	if st.Size != int64(len(content)) {
		t.Fatalf("size %d", st.Size)
	}
	back, err := ParseDigest(d.String())
	if err != nil || back != d {
		t.Fatalf("ParseDigest(%s) = %s, %v", d, back, err)
	}
}

// growFS appends to the file after the first read: a file written to while
// it is hashed must not be reported with a digest.
type growFS struct{ OS }

func (g growFS) Open(p string) (File, error) {
	f, err := g.OS.Open(p)
	if err != nil {
		return nil, err
	}
	return &growingFile{File: f, path: p}, nil
}

type growingFile struct {
	File
	path string
	done bool
}

func (f *growingFile) Read(b []byte) (int, error) {
	n, err := f.File.Read(b)
	if !f.done {
		f.done = true
		a, _ := os.OpenFile(f.path, os.O_APPEND|os.O_WRONLY, 0)
		a.Write([]byte("more"))
		a.Close()
	}
	return n, err
}

func TestHashFileDetectsChangeDuringRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("some content"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := HashFile(growFS{}, p)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("want ErrChanged, got %v", err)
	}
}

func TestHashFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "target"), []byte("x"), 0o644)
	os.Symlink("target", filepath.Join(dir, "link"))
	if _, _, err := HashFile(OS{}, filepath.Join(dir, "link")); err == nil {
		t.Fatal("followed a symlink")
	}
}

func TestRacy(t *testing.T) {
	mtime := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	st := Stat{MtimeNs: mtime, CtimeNs: mtime}
	for _, c := range []struct {
		hashedAfter time.Duration
		racy        bool
	}{
		{-time.Second, true}, // mtime in the future of the hash
		{0, true},
		{500 * time.Millisecond, true},
		{RacyWindow - 1, true},
		{RacyWindow, false},
		{time.Hour, false},
	} {
		if got := Racy(st, mtime+int64(c.hashedAfter)); got != c.racy {
			t.Errorf("hashed %v after mtime: racy=%v, want %v", c.hashedAfter, got, c.racy)
		}
	}
	// A ctime close to the hash makes it racy too.
	st.CtimeNs = mtime + int64(time.Hour)
	if !Racy(st, st.CtimeNs+1) {
		t.Error("ctime within the window should be racy")
	}
}
