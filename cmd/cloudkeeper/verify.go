package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/report"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/verify"
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
			"  archived  (--deep) it is in an archive storage class (GLACIER, DEEP_ARCHIVE): S3 gives its\n" +
			"            bytes only once restored; the line says how to ask for that\n" +
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
			"Exit status: 0 the backup is good; 1 problems were found, nothing to verify (no object listed\n" +
			"and none expected: a mistyped prefix?), or a fatal error; 2 usage error.",
		Before: applyEnvFile,
		Flags: append(append(configFlags(), logFlags()...),
			&cli.BoolFlag{Name: "deep", Usage: "download every object and check its bytes with BLAKE3"},
			&cli.BoolFlag{Name: "json", Usage: "print problems and the summary as JSON lines"},
			&cli.BoolFlag{Name: "repair", Usage: "mark what verify finds in the manifest, for the next sync to repair"},
		),
		Action: command(sourceOptional, func(ctx context.Context, c *cli.Context, p *printer, t target) error {
			repair := c.Bool("repair")
			expect, db, err := loadExpected(ctx, t, c.IsSet(flagManifest), repair, p)
			if err != nil {
				return err
			}
			if db != nil {
				defer db.Close()
			}
			if repair && expect == nil {
				return usageError{errors.New("--repair marks what verify finds in the manifest, and there is none: set --source (and --manifest if it is not the default one)")}
			}
			s3, err := uploader.NewS3(ctx, t.s3Config())
			if err != nil {
				return err
			}
			res, err := verify.Run(ctx, s3, verifyOptions(p, t, expect, c.Bool("deep"), repair))
			if errors.Is(err, verify.ErrNothing) {
				return nothingUnder("verify", t)
			}
			if err != nil {
				return err
			}
			sum := verifySummaryOf(res, c.Bool("deep"))
			if expect != nil {
				sum.Manifest = t.Manifest
			}
			printVerifySummary(p, sum)
			if repair {
				if err := markRepair(ctx, p, db, res); err != nil {
					return err
				}
			}
			if !sum.Good {
				return reportedError{exitFatal}
			}
			return nil
		}),
	}
}

// verifyOptions wires the printer into a verify: a line (or JSON
// object) per problem on stdout.
func verifyOptions(p *printer, t target, expect map[string]verify.Expected, deep, repair bool) verify.Options {
	return verify.Options{
		Prefix: t.Prefix, Concurrency: t.workers(), Deep: deep,
		Expect: expect, Repair: repair, Source: t.Source,
		Problem: func(pr verify.Problem) {
			if pr.Kind == verify.Archived {
				pr.Detail += ": " + thawCommand(t, uploader.VersionRef{Key: pr.Key}, thawDays)
			}
			printProblem(p, pr)
		},
		NotMarked: func(path string, err error) {
			p.log.Warn("not marked: its metadata cannot be read", "path", display(path), "error", err.Error())
		},
	}
}

// loadExpected reads the manifest into memory, by path; nil if there is
// none to read (the bucket is then checked alone). A manifest named by
// --manifest must exist. With repair, the manifest is opened for writing
// (no sync runs meanwhile) and returned open, to be marked and closed.
func loadExpected(ctx context.Context, t target, named, repair bool, p *printer) (map[string]verify.Expected, *manifest.DB, error) {
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
	return verify.Load(ctx, t.Manifest, t.identity(), repair)
}

// verifyProblem is one thing wrong with the backup, as --json prints it.
type verifyProblem struct {
	Kind   string `json:"problem"`        // missing, extra, mismatch, bad, archived, error
	Path   string `json:"path,omitempty"` // display form; empty if the key names no path
	Key    string `json:"key"`
	Detail string `json:"detail,omitempty"`
}

// verifySummary is the last line of a verify, as --json prints it.
type verifySummary struct {
	verify.Result
	Manifest string `json:"manifest"` // "": the bucket was checked alone
	Deep     bool   `json:"deep"`
	Good     bool   `json:"good"`
}

// verifySummaryOf is the summary verify prints of res.
func verifySummaryOf(res verify.Result, deep bool) verifySummary {
	return verifySummary{Result: res, Deep: deep, Good: res.Good()}
}

// markRepair writes what --repair collected into the manifest and says so.
func markRepair(ctx context.Context, p *printer, db *manifest.DB, res verify.Result) error {
	if err := verify.MarkRepair(ctx, db, res, time.Now()); err != nil {
		return err
	}
	m := res.Marked
	n := m.Missing + m.Differ + m.Adopted + m.Extra
	switch {
	case p.json:
		p.printJSON(struct {
			Marked report.Findings `json:"marked"`
		}{report.FindingsOf(m)})
	case n > 0:
		p.println(fmt.Sprintf("marked %s in the manifest for the next sync to repair: %s", human.Count(n, "object", "objects"), findingsLine(report.FindingsOf(m))))
	case !p.quiet:
		p.println("nothing to mark in the manifest")
	}
	return nil
}

// printProblem prints one problem: a line, or a JSON object with --json.
func printProblem(p *printer, problem verify.Problem) {
	pr := verifyProblem{Kind: problem.Kind.String(), Key: problem.Key, Detail: problem.Detail}
	if problem.Path != "" {
		pr.Path = display(problem.Path)
	}
	if problem.Kind == verify.Extra {
		pr.Detail = human.Bytes(problem.Size)
	}
	if p.json {
		p.printJSON(pr)
		return
	}
	what := pr.Path
	if what == "" {
		what = "key " + human.Key(pr.Key)
	}
	line := fmt.Sprintf("%-8s %s", pr.Kind, what)
	if pr.Detail != "" {
		line += ": " + pr.Detail
	}
	p.println(line)
}

// printVerifySummary prints the last line: "6 objects (22.1 MiB) checked
// against the manifest, bytes read and hashed: the backup is good".
func printVerifySummary(p *printer, s verifySummary) {
	if p.quiet && s.Good {
		return
	}
	if p.json {
		p.printJSON(struct {
			Summary verifySummary `json:"summary"`
		}{s})
		return
	}
	line := fmt.Sprintf("%s (%s) checked", human.Count(s.Objects, "object", "objects"), human.Bytes(s.Bytes))
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
		p.println(line + ": the backup is good")
		return
	}
	var found []string
	for _, c := range []struct {
		n    int64
		what string
	}{{s.Missing, "missing"}, {s.Extra, "extra"}, {s.Mismatch, "mismatched"}, {s.Bad, "bad"}, {s.Archived, "archived (restore them first)"}, {s.Errors, "not checked (errors)"}} {
		if c.n > 0 {
			found = append(found, human.Thousands(c.n)+" "+c.what)
		}
	}
	p.println(line + ": " + strings.Join(found, ", "))
}
