package scanner

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
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

func TestCopyHashedCopiesAndHashes(t *testing.T) {
	content := make([]byte, 2*hashBufSize+5)
	for i := range content {
		content[i] = byte(i * 13)
	}
	want := Digest(blake3.Sum256(content))
	for _, c := range []struct {
		name  string
		size  int64
		wantN int64
		same  bool
	}{
		{"as long as said", int64(len(content)), int64(len(content)), true},
		{"longer than said", int64(len(content)) - 10, int64(len(content)) - 9, false},
		{"shorter than said", int64(len(content)) + 10, int64(len(content)), true},
	} {
		var out bytes.Buffer
		sum, n, err := CopyHashed(&out, bytes.NewReader(content), c.size)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n != c.wantN || int64(out.Len()) != n {
			t.Errorf("%s: n %d, copied %d, want %d", c.name, n, out.Len(), c.wantN)
		}
		if sum != Digest(blake3.Sum256(out.Bytes())) {
			t.Errorf("%s: the digest is not that of the bytes copied", c.name)
		}
		if (sum == want) != c.same {
			t.Errorf("%s: digest %s, whole content %s", c.name, sum, want)
		}
	}
}

func TestCopyHashedReturnsWriteError(t *testing.T) {
	boom := errors.New("disk full")
	_, _, err := CopyHashed(failWriter{boom}, strings.NewReader("abc"), 3)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

// An upload reads its parts through a HashReader: the parts' digest is the
// file's, and one byte more than the size shows a file that grew.
func TestHashReaderOverParts(t *testing.T) {
	content := []byte(strings.Repeat("0123456789", 100))
	r := NewHashReader(bytes.NewReader(content), int64(len(content)))
	for off := 0; off < len(content); off += 300 {
		part := make([]byte, min(300, len(content)-off))
		if _, err := io.ReadFull(r, part); err != nil {
			t.Fatal(err)
		}
	}
	var one [1]byte
	if n, err := r.Read(one[:]); n != 0 || err != io.EOF {
		t.Fatalf("past the end: %d, %v", n, err)
	}
	if r.N() != int64(len(content)) || r.Sum() != Digest(blake3.Sum256(content)) {
		t.Fatalf("N %d, Sum %s", r.N(), r.Sum())
	}

	grown := NewHashReader(bytes.NewReader(append(content, 'x', 'y')), int64(len(content)))
	if _, err := io.ReadFull(grown, make([]byte, len(content))); err != nil {
		t.Fatal(err)
	}
	if n, _ := grown.Read(make([]byte, 10)); n != 1 {
		t.Fatalf("a source longer than its size gave %d bytes past it, want 1", n)
	}
}
