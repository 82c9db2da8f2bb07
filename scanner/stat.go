package scanner

import (
	"io/fs"
	"time"
)

// Stat is what lstat says of a regular file: enough to tell, without reading
// it, whether a file may have changed since it was last hashed.
type Stat struct {
	Size    int64
	MtimeNs int64
	CtimeNs int64
	Inode   uint64
	Dev     uint64
	Mode    fs.FileMode // permission bits (and type) as Go reports them
	// BtimeNs is the birth time (statx's stx_btime), 0 where the file
	// system or the kernel does not give one. Unlike mtime it cannot be
	// set, and unlike the inode number it is not handed on to the next
	// file: it tells a file from a new one on a freed inode.
	BtimeNs int64
}

// Same reports whether s and o describe the same file, unmodified: equal
// size, mtime, ctime, inode and device, and birth time when both have one.
// The mode is not compared: a chmod changes ctime anyway. A new file at the
// same path already differs by ctime, which is set at creation and cannot
// be set by users; the birth time keeps them apart even if the clock was
// set back. A birth time known on one side only (a manifest row recorded
// before they were, a file system without them) says nothing.
func (s Stat) Same(o Stat) bool {
	return s.Size == o.Size && s.MtimeNs == o.MtimeNs && s.CtimeNs == o.CtimeNs &&
		s.Inode == o.Inode && s.Dev == o.Dev && (s.BtimeNs == 0 || o.BtimeNs == 0 || s.BtimeNs == o.BtimeNs)
}

// Mtime returns the modification time as a time.Time.
func (s Stat) Mtime() time.Time { return time.Unix(0, s.MtimeNs) }

// RacyWindow is how close to a file's mtime (or ctime) a hash may have been
// taken and still not be trusted. File systems keep timestamps at a coarse
// granularity (ext4 follows the kernel tick, FAT two seconds, some network
// file systems one second): a file written, hashed, and written again with
// the same size inside one tick keeps its stat. As git does for its index, a
// hash taken within this window of the file's timestamps is "racily clean"
// and the file is hashed again on the next run.
const RacyWindow = 2 * time.Second

// Racy reports whether a hash of a file with stat s, taken at hashedAtNs
// (Unix nanoseconds, read before the file was opened), cannot be trusted on
// stat alone. A timestamp in the future (clock skew) is racy too.
func Racy(s Stat, hashedAtNs int64) bool {
	w := int64(RacyWindow)
	return hashedAtNs < s.MtimeNs+w || hashedAtNs < s.CtimeNs+w
}
