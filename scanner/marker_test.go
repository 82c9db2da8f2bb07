package scanner

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

const validTag = CacheTagSignature + "\n# This file is a cache directory tag.\n"

// markerTree holds a folder per kind of marker: one with .nobackup, a
// cache with a valid CACHEDIR.TAG, one whose tag has a wrong signature,
// one whose tag is too short, and a folder-only marker named as a file.
func markerTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"keep.txt": scantest.File{Content: "k"},
		"private":  scantest.Dir{".nobackup": scantest.File{}, "secret.txt": scantest.File{Content: "s"}, "sub": scantest.Dir{"x": scantest.File{}}},
		"cache":    scantest.Dir{"CACHEDIR.TAG": scantest.File{Content: validTag}, "blob": scantest.File{Content: "b"}},
		"fake":     scantest.Dir{"CACHEDIR.TAG": scantest.File{Content: "Signature: 0000000000000000000000000000000\n"}, "f": scantest.File{}},
		"short":    scantest.Dir{"CACHEDIR.TAG": scantest.File{Content: "Signature: 8a477f"}, "g": scantest.File{}},
		"src":      scantest.Dir{"a.go": scantest.File{}, "deep": scantest.Dir{".nobackup": scantest.Dir{}, "y": scantest.File{}}},
	})
	return root
}

func TestWalkExcludesMarkedFolders(t *testing.T) {
	root := markerTree(t)
	f, err := Compile(Rules{IfPresent: []string{".nobackup"}, Caches: true})
	if err != nil {
		t.Fatal(err)
	}
	es := collect(t, OS{}, root, WalkOptions{Filter: f})
	got := paths(es)
	want := []string{"cache/", "fake/CACHEDIR.TAG", "fake/f", "keep.txt", "private/", "short/CACHEDIR.TAG", "short/g", "src/a.go", "src/deep/"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, e := range es {
		if strings.HasSuffix(e.SortKey(), "/") && (e.Kind != KindExcluded || !e.Dir || e.Note == "") {
			t.Errorf("%s: %+v, want an excluded folder with why", e.Path, e)
		}
	}
	if es[0].Note != "holds a valid CACHEDIR.TAG (--exclude-caches)" {
		t.Errorf("cache's note %q", es[0].Note)
	}
	// Without the rules, nothing is left out.
	if got := paths(collect(t, OS{}, root, WalkOptions{})); len(got) != 12 {
		t.Errorf("without markers: %q", got)
	}
}

// A CACHEDIR.TAG that is a symlink to a valid tag is not one: the walk
// never follows a link it does not follow otherwise.
func TestWalkCacheTagSymlinkIsNotATag(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{"real.tag": scantest.File{Content: validTag}, "c": scantest.Dir{"x": scantest.File{}}})
	if err := os.Symlink("../real.tag", filepath.Join(root, "c", "CACHEDIR.TAG")); err != nil {
		t.Fatal(err)
	}
	f, _ := Compile(Rules{Caches: true})
	got := paths(collect(t, OS{}, root, WalkOptions{Filter: f}))
	if want := []string{"c/CACHEDIR.TAG", "c/x", "real.tag"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// The source folder itself is never left out by a marker, and a walk of a
// marked folder (a watch's scope) is that one excluded entry.
func TestWalkUnderAMarkedFolder(t *testing.T) {
	root := markerTree(t)
	os.WriteFile(filepath.Join(root, ".nobackup"), nil, 0o644)
	f, _ := Compile(Rules{IfPresent: []string{".nobackup"}})
	if got := paths(collect(t, OS{}, root, WalkOptions{Filter: f})); !slices.Contains(got, "keep.txt") {
		t.Fatalf("a marker in the source folder left it out: %q", got)
	}
	got := paths(collect(t, OS{}, root, WalkOptions{Filter: f, Under: "private"}))
	if want := []string{"private/"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A scope inside a marked folder comes out as the marked folder's entry
// (once for several scopes in it), as the full walk would leave it out.
func TestScanScopesUnderAMarkedFolder(t *testing.T) {
	root := markerTree(t)
	f, _ := Compile(Rules{IfPresent: []string{".nobackup"}, Caches: true})
	var got []string
	err := ScanScopes(context.Background(), OS{}, root, []string{"private/secret.txt", "private/sub/x", "private/gone", "cache", "src/deep/y", "fake/f", "keep.txt"},
		WalkOptions{Filter: f}, func(e Entry) error {
			got = append(got, e.SortKey())
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cache/", "fake/f", "keep.txt", "private/", "src/deep/"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A dirty marker file stands for its folder: made or removed, the whole
// folder is in or out.
func TestMarkerScopes(t *testing.T) {
	f, _ := Compile(Rules{IfPresent: []string{".nobackup"}, Caches: true})
	got := f.MarkerScopes([]string{"a/.nobackup", "b/CACHEDIR.TAG", "c/x", ".nobackup", "d/.nobackup/inner"})
	want := []string{"a", "b", "c/x", "", "d/.nobackup/inner"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	none, _ := Compile(Rules{})
	if got := none.MarkerScopes([]string{"b/CACHEDIR.TAG"}); !slices.Equal(got, []string{"b/CACHEDIR.TAG"}) {
		t.Fatalf("without --exclude-caches: %q", got)
	}
}

func TestCompileRejectsBadMarkerNames(t *testing.T) {
	for _, n := range []string{"", "a/b", ".", ".."} {
		if _, err := Compile(Rules{IfPresent: []string{n}}); err == nil {
			t.Errorf("marker name %q accepted", n)
		}
	}
}

func TestReadPatterns(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "excludes")
	os.WriteFile(file, []byte("# build output\n*.o\n\n   \n  node_modules/  \r\n/cache/**/*.bin\n\t# indented comment\na,b\n"), 0o644)
	got, err := ReadPatterns(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"*.o", "node_modules/", "/cache/**/*.bin", "a,b"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	os.WriteFile(file, []byte("*.o\n[\n"), 0o644)
	if _, err := ReadPatterns(file); err == nil || !strings.Contains(err.Error(), file+":2: ") {
		t.Fatalf("a bad pattern: %v, want its file and line", err)
	}
	if _, err := ReadPatterns(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("a missing file: %v, want its name", err)
	}
}
