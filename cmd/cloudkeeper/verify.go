package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/reconcile"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check that the bucket holds what the manifest says, and with --deep that every byte is right",
		Description: "Lists the prefix once and reads each object's metadata (HeadObject, --concurrency at\n" +
			"once), then reports, one line each:\n" +
			"  missing   the manifest has it, the bucket does not\n" +
			"  extra     the bucket has it under the prefix, the manifest does not\n" +
			"  mismatch  its size or x-amz-meta-blake3 differ from the manifest; with --deep, its\n" +
			"            bytes do not hash to its metadata or to the manifest\n" +
			"  bad       its metadata (blake3, mtime, mode) is missing or malformed, or its key is one\n" +
			"            restore refuses\n" +
			"  error     it could not be checked\n" +
			"then a summary. --deep downloads every object (a GetObject instead of the HeadObject) and\n" +
			"hashes its bytes with BLAKE3.\n\n" +
			"The manifest is the one sync uses (same settings). Without one (no --source nor --manifest,\n" +
			"or no file there: the machine that held it is lost) the bucket is checked alone: every\n" +
			"object must describe itself, and with --deep hash to its x-amz-meta-blake3.\n" +
			"The manifest is held in memory, some 200 bytes an object. Zero-byte keys ending in '/'\n" +
			"(folder markers made by S3 consoles) are ignored.\n\n" +
			"--repair marks what it finds in the manifest, so that the next sync repairs it: a missing\n" +
			"object's row is forgotten (its file is uploaded again), a mismatched or bad one's stat and\n" +
			"hash are zeroed (its file is hashed and uploaded again), an extra object is adopted (kept if\n" +
			"its file has its content, deleted if the tree has no such file). Keys that name no path are\n" +
			"left alone.\n\n" +
			"Exit status: 0 the backup is good; 1 problems were found, or a fatal error; 2 usage error.",
		Before: applyEnvFile,
		Flags: append(append(configFlags(), logFlags()...),
			&cli.BoolFlag{Name: "deep", Usage: "download every object and check its bytes with BLAKE3"},
			&cli.BoolFlag{Name: "json", Usage: "print problems and the summary as JSON lines"},
			&cli.BoolFlag{Name: "repair", Usage: "mark what verify finds in the manifest, for the next sync to repair"},
		),
		Action: func(c *cli.Context) error {
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			t, err := readTarget(c, false)
			if err != nil {
				return p.fail(err)
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			v := &verifier{prefix: t.Prefix, source: t.Source, deep: c.Bool("deep"), p: p}
			var db *manifest.DB
			if v.expect, db, err = loadExpected(ctx, t, c.IsSet(flagManifest), c.Bool("repair"), p); err != nil {
				return p.fail(err)
			}
			if db != nil {
				defer db.Close()
			}
			if v.expect != nil {
				v.sum.Manifest = t.Manifest
			}
			if c.Bool("repair") {
				if v.expect == nil {
					return p.fail(usageError{errors.New("--repair marks what verify finds in the manifest, and there is none: set --source (and --manifest if it is not the default one)")})
				}
				v.repair = &manifest.Repair{}
			}
			if v.s3, err = uploader.NewS3(ctx, t.s3Config()); err != nil {
				return p.fail(err)
			}
			if err := v.run(ctx, t.Concurrency); err != nil {
				return p.fail(err)
			}
			v.summary()
			if v.repair != nil {
				if err := v.mark(ctx, db); err != nil {
					return p.fail(err)
				}
			}
			if !v.sum.Good {
				return reportedError{exitFatal}
			}
			return nil
		},
	}
}

// expected is what the manifest says of an object.
type expected struct {
	hash scanner.Digest
	size int64
	seen bool // listed
}

// loadExpected reads the manifest into memory, by path; nil if there is
// none to read (the bucket is then checked alone). A manifest named by
// --manifest must exist. With repair, the manifest is opened for writing
// (no sync runs meanwhile) and returned open, to be marked and closed.
func loadExpected(ctx context.Context, t target, named, repair bool, p *printer) (map[string]*expected, *manifest.DB, error) {
	if t.Manifest == "" {
		p.log.Info("no manifest (neither --source nor --manifest): checking the bucket alone")
		return nil, nil, nil
	}
	if _, err := os.Stat(t.Manifest); errors.Is(err, fs.ErrNotExist) {
		if named {
			return nil, nil, fmt.Errorf("no manifest at %s", t.Manifest)
		}
		p.log.Info("no manifest: checking the bucket alone", "manifest", t.Manifest)
		return nil, nil, nil
	}
	if t.Source == "" {
		return nil, nil, usageError{errors.New("--manifest needs --source too: a manifest records the folder it describes")}
	}
	open := manifest.OpenReadOnly
	if repair {
		open = manifest.Open
	}
	db, err := open(t.Manifest, t.identity())
	if err != nil {
		return nil, nil, err
	}
	rows, err := db.Rows(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	defer rows.Close()
	m := map[string]*expected{}
	for e, ok := rows.Next(); ok; e, ok = rows.Next() {
		m[e.Path] = &expected{hash: e.Hash, size: e.Stat.Size}
	}
	if err := rows.Err(); err != nil {
		db.Close()
		return nil, nil, err
	}
	if !repair {
		db.Close()
		db = nil
	}
	return m, db, nil
}

// verifyProblem is one thing wrong with the backup, as --json prints it.
type verifyProblem struct {
	Kind   string `json:"problem"`        // missing, extra, mismatch, bad, error
	Path   string `json:"path,omitempty"` // display form; empty if the key names no path
	Key    string `json:"key"`
	Detail string `json:"detail,omitempty"`
}

type verifySummary struct {
	Objects  int64  `json:"objects"` // listed under the prefix
	Bytes    int64  `json:"bytes"`
	Manifest string `json:"manifest"` // "": the bucket was checked alone
	Deep     bool   `json:"deep"`
	Missing  int64  `json:"missing"`
	Extra    int64  `json:"extra"`
	Mismatch int64  `json:"mismatch"`
	Bad      int64  `json:"bad"`
	Errors   int64  `json:"errors"`
	Good     bool   `json:"good"`
}

// verifier checks the objects of a listing as they come, on a pool.
type verifier struct {
	s3     *uploader.S3
	prefix string
	source string
	deep   bool
	expect map[string]*expected // nil: no manifest
	p      *printer

	mu  sync.Mutex // guards expect's seen marks, sum and repair
	sum verifySummary
	// repair collects, with --repair, the edits that make the next sync
	// repair what verify found; marked counts them.
	repair *manifest.Repair
	marked manifest.Reconciled
}

func (v *verifier) run(ctx context.Context, concurrency int) error {
	v.sum.Deep = v.deep
	if err := v.s3.EachObject(ctx, v.prefix, concurrency, v.check); err != nil {
		return err
	}
	var missing []string
	for path, e := range v.expect {
		if !e.seen {
			missing = append(missing, path)
		}
	}
	slices.Sort(missing)
	for _, path := range missing {
		v.report(verifyProblem{Kind: "missing", Path: display(path), Key: manifest.Key(v.prefix, path)})
		v.toRepair(path, "missing")
	}
	return nil
}

// check verifies one listed object, reporting at most one problem. It
// returns an error only to end the run.
func (v *verifier) check(ctx context.Context, o uploader.ObjectInfo) error {
	path, err := manifest.PathOfKey(v.prefix, o.Key, o.Size)
	if errors.Is(err, manifest.ErrFolderMarker) {
		return nil
	}
	var want *expected
	v.mu.Lock()
	v.sum.Objects++
	v.sum.Bytes += o.Size
	if err == nil && v.expect != nil {
		if want = v.expect[path]; want != nil {
			want.seen = true
		}
	}
	v.mu.Unlock()
	pr := verifyProblem{Key: o.Key}
	if err == nil {
		pr.Path = display(path)
	}
	switch {
	case err != nil:
		pr.Kind, pr.Detail = "bad", "a key restore refuses: "+err.Error()
	case v.expect != nil && want == nil:
		pr.Kind, pr.Detail = "extra", humanBytes(o.Size)
		if err := v.adopt(ctx, path, o); err != nil {
			return err
		}
	case want != nil && o.Size != want.size:
		pr.Kind, pr.Detail = "mismatch", fmt.Sprintf("%d bytes in the bucket, %d in the manifest", o.Size, want.size)
	default:
		pr.Kind, pr.Detail, err = v.inspect(ctx, o, want)
		if err != nil {
			return err
		}
	}
	if pr.Kind != "" {
		v.report(pr)
	}
	if want != nil {
		v.toRepair(path, pr.Kind)
	}
	return nil
}

// toRepair marks, with --repair, a row of the manifest whose object has
// the problem kind: a missing one is forgotten, a mismatched or bad one
// goes stale.
func (v *verifier) toRepair(path, kind string) {
	if v.repair == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch kind {
	case "missing":
		v.repair.Forget = append(v.repair.Forget, path)
		v.marked.Missing++
	case "mismatch", "bad":
		v.repair.Stale = append(v.repair.Stale, path)
		v.marked.Differ++
	}
}

// adopt marks, with --repair, an extra object for the manifest to adopt,
// from its metadata: the next sync keeps it if the tree has its content
// at its path, uploads the file if it differs, deletes it if there is no
// file. One that cannot be read is left alone.
func (v *verifier) adopt(ctx context.Context, path string, o uploader.ObjectInfo) error {
	if v.repair == nil {
		return nil
	}
	meta, err := v.s3.Head(ctx, o.Key)
	switch {
	case err != nil && (uploader.IsFatal(err) || ctx.Err() != nil):
		return err
	case err != nil:
		v.p.log.Warn("not marked: its metadata cannot be read", "path", display(path), "error", err.Error())
		return nil
	}
	e := reconcile.Adopt(path, o, meta)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.repair.Adopt = append(v.repair.Adopt, e)
	if reconcile.InTree(v.source, path, false) {
		v.marked.Adopted++
	} else {
		v.marked.Extra++
	}
	return nil
}

// mark writes what --repair collected into the manifest and says so. A
// verify that checked every object is as good as a reconcile, and is
// recorded as one.
func (v *verifier) mark(ctx context.Context, db *manifest.DB) error {
	if err := db.Repair(ctx, *v.repair); err != nil {
		return err
	}
	m := v.marked
	n := m.Missing + m.Differ + m.Adopted + m.Extra
	if v.sum.Errors == 0 {
		m.At = time.Now()
		if err := db.SetReconciled(ctx, m); err != nil {
			return err
		}
	}
	switch {
	case v.p.json:
		b, _ := json.Marshal(struct {
			Marked findings `json:"marked"`
		}{findingsOf(m)})
		v.p.println(string(b))
	case n > 0:
		v.p.println(fmt.Sprintf("marked %s in the manifest for the next sync to repair: %s", count(n, "object", "objects"), findingsOf(m)))
	case !v.p.quiet:
		v.p.println("nothing to mark in the manifest")
	}
	return nil
}

// inspect reads the object's metadata, and with --deep its bytes, and
// returns the problem found ("" for none); an error only to end the run.
func (v *verifier) inspect(ctx context.Context, o uploader.ObjectInfo, want *expected) (kind, detail string, err error) {
	var meta uploader.ObjectMeta
	var sum scanner.Digest
	var n int64
	if v.deep {
		var body io.ReadCloser
		if body, meta, err = v.s3.Get(ctx, o.Key); err == nil {
			sum, n, err = uploader.ReadHashed(io.Discard, body, meta.Size)
			body.Close()
			if err != nil {
				err = fmt.Errorf("read %s: %w", o.Key, err)
			}
		}
	} else {
		meta, err = v.s3.Head(ctx, o.Key)
	}
	switch {
	case err != nil && (uploader.IsFatal(err) || ctx.Err() != nil):
		return "", "", err
	case errors.Is(err, uploader.ErrNotFound) && want != nil:
		return "missing", "deleted while verify ran", nil
	case err != nil:
		return "error", err.Error(), nil
	case meta.HashErr != nil:
		return "bad", meta.HashErr.Error(), nil
	case want != nil && meta.Hash != want.hash:
		return "mismatch", fmt.Sprintf("x-amz-meta-blake3 is %s, the manifest says %s", meta.Hash, want.hash), nil
	case v.deep && n != meta.Size:
		return "mismatch", fmt.Sprintf("read %d bytes of %d", n, meta.Size), nil
	case v.deep && sum != meta.Hash:
		return "mismatch", fmt.Sprintf("its bytes hash to %s, not to its x-amz-meta-blake3 %s", sum, meta.Hash), nil
	case meta.Err() != nil:
		return "bad", meta.Err().Error(), nil
	}
	return "", "", nil
}

func (v *verifier) report(pr verifyProblem) {
	v.mu.Lock()
	switch pr.Kind {
	case "missing":
		v.sum.Missing++
	case "extra":
		v.sum.Extra++
	case "mismatch":
		v.sum.Mismatch++
	case "bad":
		v.sum.Bad++
	default:
		v.sum.Errors++
	}
	v.mu.Unlock()
	if v.p.json {
		b, _ := json.Marshal(pr)
		v.p.println(string(b))
		return
	}
	what := pr.Path
	if what == "" {
		what = "key " + showKey(pr.Key)
	}
	line := fmt.Sprintf("%-8s %s", pr.Kind, what)
	if pr.Detail != "" {
		line += ": " + pr.Detail
	}
	v.p.println(line)
}

// summary prints the last line: "6 objects (22.1 MiB) checked against the
// manifest, bytes read and hashed: the backup is good".
func (v *verifier) summary() {
	s := &v.sum
	s.Good = s.Missing+s.Extra+s.Mismatch+s.Bad+s.Errors == 0
	if v.p.quiet && s.Good {
		return
	}
	if v.p.json {
		b, _ := json.Marshal(struct {
			Summary verifySummary `json:"summary"`
		}{*s})
		v.p.println(string(b))
		return
	}
	line := fmt.Sprintf("%s (%s) checked", count(s.Objects, "object", "objects"), humanBytes(s.Bytes))
	if s.Manifest != "" {
		line += " against the manifest"
	} else {
		line += " in the bucket alone (no manifest)"
	}
	if s.Deep {
		line += ", bytes read and hashed"
	} else {
		line += ", metadata only"
	}
	if s.Good {
		v.p.println(line + ": the backup is good")
		return
	}
	var found []string
	for _, c := range []struct {
		n    int64
		what string
	}{{s.Missing, "missing"}, {s.Extra, "extra"}, {s.Mismatch, "mismatched"}, {s.Bad, "bad"}, {s.Errors, "not checked (errors)"}} {
		if c.n > 0 {
			found = append(found, thousands(c.n)+" "+c.what)
		}
	}
	v.p.println(line + ": " + strings.Join(found, ", "))
}
