package scanner

import (
	"context"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// A dirty path under what is now a symlink to a folder (the folder was
// replaced by a link, and the link's own event went to another push, or
// the dirty set was persisted): the walk never goes through the link, nor
// does a scope; the path reads as gone, as in a full walk (a reviewer's
// find: with --links, linkdir/d.txt was uploaded, read through the link).
func TestScopeUnderASymlinkIsNotReadThroughIt(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"dir":     scantest.Dir{"d.txt": scantest.File{Content: "d"}},
		"linkdir": scantest.Symlink{Target: "dir"},
	})
	for _, fsys := range []OS{{Links: true}, {}} {
		var got []string
		err := ScanScopes(context.Background(), fsys, root, []string{"linkdir/d.txt", "linkdir/sub"}, WalkOptions{}, func(e Entry) error {
			got = append(got, e.Path)
			return nil
		})
		if err != nil || len(got) != 0 {
			t.Errorf("%+v: scopes under the link gave %q, %v; want nothing (gone)", fsys, got, err)
		}
	}
	var got []string
	err := ScanScopes(context.Background(), OS{FollowSymlinks: true}, root, []string{"linkdir/d.txt"}, WalkOptions{}, func(e Entry) error {
		got = append(got, e.Path)
		return nil
	})
	if err != nil || len(got) != 1 || got[0] != "linkdir/d.txt" {
		t.Errorf("following symlinks: %q, %v; want linkdir/d.txt", got, err)
	}
}
