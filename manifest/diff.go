package manifest

import (
	"context"
	"io/fs"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// Stats counts what a diff saw besides its changes.
type Stats struct {
	Unchanged   int64 // files whose object is up to date (touches included)
	Kept        int64 // objects left alone because their path could not be read
	Errors      int64 // problems with an error
	Hashed      int64 // files read and hashed
	HashedBytes int64 // bytes read to hash them
	// Excluded counts the folders the scan left out by a marker file
	// (scanner.KindExcluded).
	Excluded int64
	// Refused is set when the deletes were held back by MaxDelete: the
	// run must say so and fail, although it applied everything else.
	Refused error
}

// Diff compares a scan with the manifest.
type Diff struct {
	DB     *DB
	FS     scanner.FS
	Root   string // the source folder the scan's paths are relative to
	Prefix string // normalized key prefix, to check key lengths
	// Filter: manifest paths it excludes are left alone, neither scanned
	// nor deleted.
	Filter *scanner.Filter
	// DeleteExcluded deletes instead the objects of what is excluded,
	// by the Filter's patterns or by a marker (within MaxDelete).
	DeleteExcluded bool
	// Rehash hashes every file, trusting no stat.
	Rehash bool
	// MaxDelete bounds the deletes of the run (renames are not deletes);
	// the zero value is DefaultDeleteLimit (a limit of 0 allows none).
	MaxDelete DeleteLimit
	// Scopes, when not nil, restricts the diff to these paths and what is
	// under them (the dirty paths of a watch, see scanner.Scopes): the
	// scan covers only them, and manifest rows elsewhere are not looked
	// at.
	Scopes []string
	// DupCopyMin is the smallest new file copied on the server from
	// another new file of the same content that this run uploads (a copy
	// with FromRun set); smaller ones are uploaded each. Zero means
	// DefaultDupCopyMin.
	DupCopyMin int64
	// Hashers is how many files are hashed at once; default the number of
	// CPUs, at least 4 (a hasher waits on the disk as often as not).
	Hashers int
	// Problems receives every problem, from a single goroutine.
	Problems func(Problem)
	// Hashed, if set, is told the size of each file hashed, from the
	// hashing goroutines (for progress displays).
	Hashed func(size int64)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultDupCopyMin is Diff.DupCopyMin's default. A CopyObject costs the
// same request as a PutObject, and so small a body adds little to its
// request's time: copying it saves next to nothing and makes it wait for
// its source. Leaving the many small files out also keeps the run's map of
// contents (one entry per new file at least this size) small.
const DefaultDupCopyMin = 4 << 10

func (d *Diff) dupCopyMin() int64 {
	if d.DupCopyMin > 0 {
		return d.DupCopyMin
	}
	return DefaultDupCopyMin
}

// Run merges the scan (in SortKey order) with the manifest and sends the
// changes to out in three waves: uploads and touches as the merge finds
// them; then, when the whole scan is known, renames and copies paired by
// content hash (with the uploads of content that turned out not to be in
// the bucket); then deletes. Appliers must finish every copy before a
// delete, since a vanished path's object may be a copy's source. Of new
// files with one content the bucket does not hold yet, the first is
// uploaded and the others (of DupCopyMin bytes or more) are copies of it,
// sent after it with FromRun set: appliers must hold each until its source
// is confirmed.
func (d *Diff) Run(ctx context.Context, scan <-chan scanner.Entry, out chan<- Change) (Stats, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Problems == nil {
		d.Problems = func(Problem) {}
	}
	hashers := d.Hashers
	if hashers <= 0 {
		hashers = max(4, runtime.GOMAXPROCS(0))
	}
	// With an empty manifest (a first run) no content is known: skip the
	// look-ups by hash and inode made for each new file.
	empty, err := d.DB.Empty(ctx)
	if err != nil {
		return Stats{}, err
	}
	var rows *Rows
	var objects int64 // the share --max-delete counts against
	if d.Scopes != nil {
		if objects, _, err = d.DB.Count(ctx); err == nil {
			rows, err = d.DB.RowsIn(ctx, d.Scopes)
		}
	} else {
		rows, err = d.DB.Rows(ctx)
	}
	if err != nil {
		return Stats{}, err
	}
	defer rows.Close()

	var st Stats
	var unchanged, kept, excluded, total atomic.Int64
	total.Store(objects) // a scoped diff counts against the whole manifest; a full one counts its rows
	g, ctx := errgroup.WithContext(ctx)
	ordered := make(chan *item, 4096)
	jobs := make(chan *item, 256)
	for range hashers {
		g.Go(func() error {
			for it := range jobs {
				d.hash(ctx, it)
				close(it.done)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(ordered)
		defer close(jobs)
		m := merger{d: d, ctx: ctx, rows: rows, scan: scan, ordered: ordered, jobs: jobs, unchanged: &unchanged, kept: &kept, excluded: &excluded, total: &total, lookups: !empty}
		return m.run()
	})
	g.Go(func() error {
		c := classifier{d: d, ctx: ctx, out: out, st: &st, modified: map[string]bool{}, firsts: map[scanner.Digest]string{}, lookups: !empty, total: &total}
		return c.run(ordered)
	})
	err = g.Wait()
	st.Unchanged += unchanged.Load()
	st.Kept += kept.Load()
	st.Excluded = excluded.Load()
	return st, err
}

func (d *Diff) abs(rel string) string { return d.Root + "/" + rel }

func (d *Diff) hash(ctx context.Context, it *item) {
	if err := ctx.Err(); err != nil {
		it.err = err
		return
	}
	it.hashedNs = d.Now().UnixNano()
	if it.stat.Mode&fs.ModeSymlink != 0 { // a link kept as a link: its content is its target
		it.digest, it.hashed, _, it.err = scanner.HashLink(d.FS, d.abs(it.path))
	} else {
		it.digest, it.hashed, it.err = scanner.HashFile(d.FS, d.abs(it.path))
	}
	if it.err == nil && d.Hashed != nil {
		d.Hashed(it.hashed.Size)
	}
}
