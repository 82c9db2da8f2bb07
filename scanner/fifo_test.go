package scanner

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// Open of a FIFO (a file replaced by one after the listing, or a
// CACHEDIR.TAG that is one) is an error at once: open(2) of a FIFO waits
// for a writer, and a cron run waited for ever (a reviewer's find, with
// --exclude-caches: the walk and watch's scopes hung).
func TestOpenOfAFIFOIsAnErrorNotAWait(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{"c": scantest.Dir{"x": scantest.File{Content: "x"}}, "d": scantest.File{Content: "d"}})
	if err := unix.Mkfifo(filepath.Join(root, "c", CacheTagName), 0o644); err != nil {
		t.Fatal(err)
	}
	within := func(what string, f func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("%s still waits after 10 s on a FIFO", what)
			return nil
		}
	}
	if err := within("Open", func() error {
		f, err := OS{}.Open(filepath.Join(root, "c", CacheTagName))
		if err == nil {
			f.Close()
		}
		return err
	}); err == nil {
		t.Error("Open of a FIFO succeeded, want an error")
	}
	filter, err := Compile(Rules{Caches: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = within("Walk", func() error {
		return Walk(context.Background(), OS{}, root, WalkOptions{Filter: filter}, func(e Entry) error {
			got = append(got, e.Path)
			return nil
		})
	})
	if err != nil || !slices.Contains(got, "c/x") {
		t.Errorf("walk: %q, %v; want c/x backed up (a FIFO is no valid cache tag)", got, err)
	}
	err = within("ScanScopes", func() error {
		return ScanScopes(context.Background(), OS{}, root, []string{"c/x"}, WalkOptions{Filter: filter}, func(Entry) error { return nil })
	})
	if err != nil {
		t.Errorf("ScanScopes: %v", err)
	}
}
