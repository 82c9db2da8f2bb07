package manifest

import (
	"fmt"
)

// Op is what a change does to the bucket.
type Op uint8

const (
	// OpAdd uploads a path the manifest does not have.
	OpAdd Op = iota + 1
	// OpModify uploads new content for a path the manifest has.
	OpModify
	// OpRename copies From's object to Path on the server, then deletes
	// From: a file that moved, found by its content hash.
	OpRename
	// OpCopy copies From's object, which stays, to Path on the server.
	OpCopy
	// OpDelete deletes the object of a path that is gone.
	OpDelete
	// OpTouch records a new stat for unchanged content. The object's
	// metadata is refreshed if the mtime or mode moved; nothing is uploaded.
	OpTouch
)

var opNames = [...]string{OpAdd: "add", OpModify: "modify", OpRename: "rename", OpCopy: "copy", OpDelete: "delete", OpTouch: "touch"}

func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Change is one step that makes the bucket match the source.
type Change struct {
	Op    Op
	Path  string // the path changed; for rename and copy, the new one
	From  string // rename and copy: the path whose object is copied
	Entry Entry  // the row to record once S3 confirmed; for a delete, the row to forget
	Prev  *Entry // the row this change replaces, if the path had one
	// Gone is, for a rename, From's row: its object is deleted once copied.
	Gone *Entry
	// FromRun is set on a copy whose From is written by this same run: an
	// add or modify of the same content sent before it. The copy must wait
	// until S3 confirmed that write, and if the write failed, Path's file
	// is uploaded instead (see Diff.DupCopyMin).
	FromRun bool
}

// MetaChanged reports whether a touch must refresh the object's metadata:
// the mtime or the mode differs from what the object carries.
func (c Change) MetaChanged() bool {
	return c.Prev == nil || c.Prev.Stat.MtimeNs != c.Entry.Stat.MtimeNs || c.Prev.Stat.Mode != c.Entry.Stat.Mode
}

// Problem is a path the run could not back up as it is: an error (Err set)
// or a notice that it was skipped by design (Notice set).
type Problem struct {
	Path   string
	Err    error
	Notice string
	// Symlink is set on the notice of a symlink skipped as such: neither
	// followed nor kept as a link (a run sums these up).
	Symlink bool
}

func (p Problem) String() string {
	if p.Err != nil {
		return fmt.Sprintf("%s: %v", p.Path, p.Err)
	}
	return fmt.Sprintf("%s: %s", p.Path, p.Notice)
}
