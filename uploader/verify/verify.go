// Package verify checks a backup: the manifest against the bucket, or,
// without a manifest, the bucket against its own metadata. It lists the
// prefix once and reads each object's metadata (a HeadObject), or with
// Deep its bytes (a GetObject, hashed with BLAKE3), and reports each
// problem it finds, typed (Kind), to a callback. With Repair it also
// collects the edits that make the next sync repair what it found, the
// way a reconcile does (MarkRepair writes them).
//
//	want, _ := verify.Expect(ctx, db) // or nil: the bucket alone
//	res, err := verify.Run(ctx, s3, verify.Options{
//		Prefix: "laptop/", Expect: want, Deep: true,
//		Problem: func(p verify.Problem) { fmt.Println(p.Kind, p.Path, p.Detail) },
//	})
//	if err == nil && !res.Good() { ... }
//
// Run returns an error only for what ends the whole check (a fatal S3
// error, ctx's); an object that cannot be read is a problem of kind
// Unreadable.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/reconcile"
)

// Kind is a problem verify finds with one object.
type Kind uint8

const (
	// Missing: the manifest has it, the bucket does not (or no longer:
	// deleted while verify ran).
	Missing Kind = iota + 1
	// Extra: the bucket has it under the prefix, the manifest does not.
	Extra
	// WrongSize: its size in the listing is not the manifest's.
	WrongSize
	// WrongHash: its x-amz-meta-blake3 is not the manifest's hash.
	WrongHash
	// ShortRead (Deep): its body is shorter or longer than its size.
	ShortRead
	// BadBytes (Deep): its bytes do not hash to its x-amz-meta-blake3.
	BadBytes
	// BadMetadata: its x-amz-meta-blake3, -mtime or -mode is missing or
	// malformed.
	BadMetadata
	// BadKey: its key names no path (one restore refuses).
	BadKey
	// Unreadable: it could not be checked.
	Unreadable
	// Archived (Deep): it is in an archive storage class (GLACIER,
	// DEEP_ARCHIVE), whose bytes S3 gives only once restored
	// (uploader.ErrArchived); its metadata was not checked either.
	Archived
)

// String is the word verify's report uses for the kind: "missing",
// "extra", "mismatch" (WrongSize, WrongHash, ShortRead, BadBytes), "bad"
// (BadMetadata, BadKey), "archived" or "error" (Unreadable).
func (k Kind) String() string {
	switch k {
	case Archived:
		return "archived"
	case Missing:
		return "missing"
	case Extra:
		return "extra"
	case WrongSize, WrongHash, ShortRead, BadBytes:
		return "mismatch"
	case BadMetadata, BadKey:
		return "bad"
	}
	return "error"
}

// Problem is one thing wrong with the backup.
type Problem struct {
	Kind   Kind
	Path   string // the path the key names; "" if it names none (BadKey)
	Key    string // as listed; untrusted
	Size   int64  // as listed; 0 for Missing
	Detail string // what is wrong, in words
}

// Expected is what the manifest says of an object.
type Expected struct {
	Hash scanner.Digest
	Size int64
}

// Expect reads the manifest's rows into memory, by path (some 200 bytes
// a row), for Options.Expect.
func Expect(ctx context.Context, db *manifest.DB) (map[string]Expected, error) {
	rows, err := db.Rows(ctx)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string]Expected{}
	for e, ok := rows.Next(); ok; e, ok = rows.Next() {
		m[e.Path] = Expected{Hash: e.Hash, Size: e.Stat.Size}
	}
	return m, rows.Err()
}

// Load opens the manifest at path and reads what it expects (Expect):
// read-only, or for writing with forRepair, when it is returned open for
// MarkRepair (the caller closes it; no sync may run meanwhile). A manifest
// that is not there is an error (fs.ErrNotExist): it is never created, as
// an empty one would call every object extra. To check the bucket alone,
// pass no Options.Expect.
func Load(ctx context.Context, path string, id manifest.Identity, forRepair bool) (map[string]Expected, *manifest.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("manifest: %w", err)
	}
	open := manifest.OpenReadOnly
	if forRepair {
		open = manifest.Open
	}
	db, err := open(path, id)
	if err != nil {
		return nil, nil, err
	}
	m, err := Expect(ctx, db)
	if err != nil || !forRepair {
		db.Close()
		db = nil
	}
	if err != nil {
		return nil, nil, err
	}
	return m, db, nil
}

// Options says what to check and where to report. Callbacks may be nil,
// and are called from several goroutines at once.
type Options struct {
	Prefix      string // the backup's key prefix (manifest.NormalizePrefix)
	Concurrency int    // objects checked at once (default 1)
	// Deep downloads every object and hashes its bytes.
	Deep bool
	// Expect is what the manifest holds, by path (Expect); nil checks
	// the bucket alone: every object must describe itself.
	Expect map[string]Expected
	// Repair collects, in Result.Repair, the manifest edits that make
	// the next sync repair what was found; Source is the backed-up folder,
	// which tells an extra object whose file exists (adopted) from one
	// to delete. It needs Expect.
	Repair bool
	Source string

	// Problem is called for each problem, once per object at most.
	Problem func(Problem)
	// NotMarked is called, with Repair, for an extra object left out of
	// the repair because its metadata cannot be read.
	NotMarked func(path string, err error)
}

// Result counts what Run checked and found, by the words of Kind.String.
type Result struct {
	Objects  int64 `json:"objects"` // listed under the prefix
	Bytes    int64 `json:"bytes"`
	Missing  int64 `json:"missing"`
	Extra    int64 `json:"extra"`
	Mismatch int64 `json:"mismatch"`
	Bad      int64 `json:"bad"`
	Errors   int64 `json:"errors"`
	Archived int64 `json:"archived"` // with Deep: not read, to be restored first
	// Repair (with Options.Repair) is what MarkRepair writes; Marked
	// counts it.
	Repair *manifest.Repair    `json:"-"`
	Marked manifest.Reconciled `json:"-"`
}

// Good reports whether no problem was found.
func (r Result) Good() bool { return r.Missing+r.Extra+r.Mismatch+r.Bad+r.Errors+r.Archived == 0 }

// verifier is one Run.
type verifier struct {
	bucket uploader.Reader
	o      Options
	seen   map[string]bool // paths of Expect listed

	mu  sync.Mutex // guards seen and res
	res Result
}

// ErrNothing is Run's error when no object is under the prefix and none is
// expected (no manifest, or one with no object): nothing checked is not a
// good backup, the prefix is most likely mistyped.
var ErrNothing = errors.New("no object to verify")

// Run checks the objects under opts.Prefix, against opts.Expect if set.
func Run(ctx context.Context, bucket uploader.Reader, opts Options) (Result, error) {
	v := &verifier{bucket: bucket, o: opts, seen: map[string]bool{}}
	if opts.Repair && opts.Expect != nil {
		v.res.Repair = &manifest.Repair{}
	}
	if err := uploader.EachObject(ctx, bucket, opts.Prefix, opts.Concurrency, v.check); err != nil {
		return v.res, err
	}
	if v.res.Objects == 0 && len(opts.Expect) == 0 {
		return v.res, ErrNothing
	}
	var missing []string
	for path := range opts.Expect {
		if !v.seen[path] {
			missing = append(missing, path)
		}
	}
	slices.Sort(missing)
	for _, path := range missing {
		v.report(Problem{Kind: Missing, Path: path, Key: manifest.Key(opts.Prefix, path)})
		v.toRepair(path, Missing)
	}
	return v.res, nil
}

// check verifies one listed object, reporting at most one problem. It
// returns an error only to end the run.
func (v *verifier) check(ctx context.Context, o uploader.ObjectInfo) error {
	path, err := manifest.PathOfKey(v.o.Prefix, o.Key, o.Size)
	if errors.Is(err, manifest.ErrFolderMarker) || errors.Is(err, manifest.ErrHistoryKey) {
		return nil // the history area's copies are no file's object
	}
	var want *Expected
	v.mu.Lock()
	v.res.Objects++
	v.res.Bytes += o.Size
	if err == nil && v.o.Expect != nil {
		if e, ok := v.o.Expect[path]; ok {
			want = &e
			v.seen[path] = true
		}
	}
	v.mu.Unlock()
	pr := Problem{Key: o.Key, Size: o.Size}
	if err == nil {
		pr.Path = path
	}
	switch {
	case err != nil:
		pr.Kind, pr.Detail = BadKey, "a key restore refuses: "+err.Error()
	case v.o.Expect != nil && want == nil:
		pr.Kind = Extra
		if err := v.adopt(ctx, path, o); err != nil {
			return err
		}
	case want != nil && o.Size != want.Size:
		pr.Kind, pr.Detail = WrongSize, fmt.Sprintf("%d bytes in the bucket, %d in the manifest", o.Size, want.Size)
	default:
		pr.Kind, pr.Detail, err = v.inspect(ctx, o, want)
		if err != nil {
			return err
		}
	}
	if pr.Kind != 0 {
		v.report(pr)
	}
	if want != nil {
		v.toRepair(path, pr.Kind)
	}
	return nil
}

// inspect reads the object's metadata, and with Deep its bytes, and
// returns the problem found (0 for none); an error only to end the run.
func (v *verifier) inspect(ctx context.Context, o uploader.ObjectInfo, want *Expected) (kind Kind, detail string, err error) {
	var meta uploader.ObjectMeta
	var sum scanner.Digest
	var n int64
	if v.o.Deep {
		meta, sum, n, err = v.read(ctx, o)
	} else {
		meta, err = v.bucket.Head(ctx, o.Key)
	}
	switch {
	case err != nil && (uploader.IsFatal(err) || ctx.Err() != nil):
		return 0, "", err
	case errors.Is(err, uploader.ErrNotFound) && want != nil:
		return Missing, "deleted while verify ran", nil
	case errors.Is(err, uploader.ErrArchived):
		return Archived, "in an archive storage class, not read: request a restore first", nil
	case err != nil:
		return Unreadable, err.Error(), nil
	case meta.HashErr != nil:
		return BadMetadata, meta.HashErr.Error(), nil
	case want != nil && meta.Hash != want.Hash:
		return WrongHash, fmt.Sprintf("x-amz-meta-blake3 is %s, the manifest says %s", meta.Hash, want.Hash), nil
	case meta.IsLink:
		kind, detail := linkProblem(meta)
		return kind, detail, nil
	case v.o.Deep && n != meta.Size:
		return ShortRead, fmt.Sprintf("read %d bytes of %d", n, meta.Size), nil
	case v.o.Deep && sum != meta.Hash:
		return BadBytes, fmt.Sprintf("its bytes hash to %s, not to its x-amz-meta-blake3 %s", sum, meta.Hash), nil
	case meta.Err() != nil:
		return BadMetadata, meta.Err().Error(), nil
	}
	return 0, "", nil
}

// read GETs the object and hashes its bytes. An empty one that S3 will
// not GET, in an archive storage class, is read with a HEAD: its content
// (none, or a link's target) is all in its metadata.
func (v *verifier) read(ctx context.Context, o uploader.ObjectInfo) (uploader.ObjectMeta, scanner.Digest, int64, error) {
	body, meta, err := v.bucket.Get(ctx, o.Key)
	if errors.Is(err, uploader.ErrArchived) && o.Size == 0 {
		meta, err = v.bucket.Head(ctx, o.Key)
		body = io.NopCloser(strings.NewReader(""))
	}
	if err != nil {
		return meta, scanner.Digest{}, 0, err
	}
	defer body.Close()
	sum, n, err := scanner.CopyHashed(io.Discard, body, meta.Size)
	if err != nil {
		err = fmt.Errorf("read %s: %w", o.Key, err)
	}
	return meta, sum, n, err
}

// linkProblem is the problem of a symlink's object (sync --links), whose
// content is its target, in its metadata: the target must hash to its
// x-amz-meta-blake3 (scanner.LinkDigest), and the object hold no bytes.
func linkProblem(meta uploader.ObjectMeta) (Kind, string) {
	switch {
	case meta.Err() != nil:
		return BadMetadata, meta.Err().Error()
	case scanner.LinkDigest(meta.Link) != meta.Hash:
		return BadBytes, fmt.Sprintf("its target %s hashes to %s, not to its x-amz-meta-blake3 %s",
			manifest.EscapePath(meta.Link), scanner.LinkDigest(meta.Link), meta.Hash)
	case meta.Size != 0:
		return BadMetadata, fmt.Sprintf("a symlink's object holds %d bytes", meta.Size)
	}
	return 0, ""
}

func (v *verifier) report(pr Problem) {
	v.mu.Lock()
	switch pr.Kind.String() {
	case "missing":
		v.res.Missing++
	case "extra":
		v.res.Extra++
	case "mismatch":
		v.res.Mismatch++
	case "bad":
		v.res.Bad++
	case "archived":
		v.res.Archived++
	default:
		v.res.Errors++
	}
	v.mu.Unlock()
	if v.o.Problem != nil {
		v.o.Problem(pr)
	}
}

// toRepair marks, with Repair, a row of the manifest whose object has
// the problem kind: a missing one is forgotten, a mismatched or bad one
// goes stale.
func (v *verifier) toRepair(path string, kind Kind) {
	if v.res.Repair == nil || kind == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch kind.String() {
	case "missing":
		v.res.Repair.Forget = append(v.res.Repair.Forget, path)
		v.res.Marked.Missing++
	case "mismatch", "bad":
		v.res.Repair.Stale = append(v.res.Repair.Stale, path)
		v.res.Marked.Differ++
	}
}

// adopt marks, with Repair, an extra object for the manifest to adopt,
// from its metadata: the next sync keeps it if the tree has its content
// at its path, uploads the file if it differs, deletes it if there is no
// file. One whose metadata cannot be read is left alone.
func (v *verifier) adopt(ctx context.Context, path string, o uploader.ObjectInfo) error {
	if v.res.Repair == nil {
		return nil
	}
	meta, err := v.bucket.Head(ctx, o.Key)
	switch {
	case err != nil && (uploader.IsFatal(err) || ctx.Err() != nil):
		return err
	case err != nil:
		if v.o.NotMarked != nil {
			v.o.NotMarked(path, err)
		}
		return nil
	}
	e := reconcile.Adopt(path, o, meta)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.res.Repair.Adopt = append(v.res.Repair.Adopt, e)
	if reconcile.InTree(v.o.Source, path, false) {
		v.res.Marked.Adopted++
	} else {
		v.res.Marked.Extra++
	}
	return nil
}

// MarkRepair writes res.Repair into the manifest db. A verify that checked
// every object (no Unreadable, no Archived) is as good as a reconcile, and is recorded
// as one at at, with res.Marked as its findings.
func MarkRepair(ctx context.Context, db *manifest.DB, res Result, at time.Time) error {
	if res.Repair == nil {
		return nil
	}
	if err := db.Repair(ctx, *res.Repair); err != nil {
		return err
	}
	if res.Errors+res.Archived > 0 {
		return nil
	}
	m := res.Marked
	m.At = at
	return db.SetReconciled(ctx, m)
}
