package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// costSummary is what the JSON summary says of the requests.
type costSummary struct {
	Summary struct {
		Requests struct {
			ByOp  map[string]int64 `json:"by_op"`
			Bytes int64            `json:"bytes_sent"`
		} `json:"requests"`
		Total int64 `json:"request_total"`
		Cost  struct {
			USD         float64 `json:"usd"`
			EarlyDelete float64 `json:"early_delete_usd"`
			EarlyObj    int64   `json:"early_delete_objects"`
		} `json:"cost"`
		Approximated []string `json:"approximated"`
	} `json:"summary"`
}

func (r result) costSummary(t *testing.T) costSummary {
	t.Helper()
	ls := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var cs costSummary
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &cs); err != nil || cs.Summary.Requests.ByOp == nil {
		t.Fatalf("no requests in the summary %q: %v", ls[len(ls)-1], err)
	}
	return cs
}

// seen are the proxy's counts of the last run, without zeros.
func (e *env) seen() map[string]int64 {
	out := map[string]int64{}
	for op, n := range e.ops() {
		if n > 0 {
			out[op] = n
		}
	}
	return out
}

// The dry run tells the requests the run will send, exactly: the dry run's
// estimate, the real run's own count and the requests the server saw agree,
// operation by operation, for a first run (with its look for objects in the
// prefix) and for a run of adds, a multipart upload, a modify, a rename, a
// copy and deletes; status shows the real run's count.
func TestDryRunEstimatesTheRequestsOfTheRun(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"a.txt":   scantest.File{Content: "alpha"},
		"b.txt":   scantest.File{Content: "bravo"},
		"mv.txt":  scantest.File{Content: "to be moved"},
		"old.txt": scantest.File{Content: "old"},
		"old2":    scantest.Dir{"x.txt": scantest.File{Content: "x"}},
	})
	check := func(t *testing.T, want map[string]int64, args ...string) {
		t.Helper()
		dry := e.sync(0, append([]string{"--dry-run", "--json"}, args...)...)
		// Its bucket check, and on a first run its look into the prefix.
		checks := map[string]int64{"HeadBucket": 1}
		if want["ListObjectsV2"] > 0 {
			checks["ListObjectsV2"] = 1
		}
		if fmt.Sprint(e.seen()) != fmt.Sprint(checks) {
			t.Fatalf("the dry run sent %v, want only its checks %v", e.seen(), checks)
		}
		estimate := dry.costSummary(t)
		real := e.sync(0, append([]string{"--json"}, args...)...)
		count, seen := real.costSummary(t), e.seen()
		if fmt.Sprint(estimate.Summary.Requests.ByOp) != fmt.Sprint(want) || fmt.Sprint(count.Summary.Requests.ByOp) != fmt.Sprint(want) ||
			fmt.Sprint(seen) != fmt.Sprint(want) {
			t.Fatalf("requests by operation:\n dry run's estimate %v\n real run's count   %v\n server saw         %v\n want               %v",
				estimate.Summary.Requests.ByOp, count.Summary.Requests.ByOp, seen, want)
		}
		if estimate.Summary.Requests.Bytes != count.Summary.Requests.Bytes || estimate.Summary.Cost.USD != count.Summary.Cost.USD ||
			estimate.Summary.Total != count.Summary.Total || estimate.Summary.Cost.USD <= 0 {
			t.Fatalf("dry run %+v, real run %+v", estimate.Summary, count.Summary)
		}
		if len(estimate.Summary.Approximated) != 0 {
			t.Fatalf("approximated: %q", estimate.Summary.Approximated)
		}
	}
	t.Run("first run", func(t *testing.T) {
		e.t = t
		// A first run counts as a reconcile: it records the bucket's
		// versioning.
		check(t, map[string]int64{"GetBucketVersioning": 1, "HeadBucket": 1, "ListObjectsV2": 1, "PutObject": 5})
	})
	t.Run("adds, multipart upload, modify, rename, copy, deletes", func(t *testing.T) {
		e.t = t
		scantest.Write(t, e.src, "new1.txt", "new one")
		scantest.Write(t, e.src, "new2.txt", "new two")
		scantest.Write(t, e.src, "big.bin", bigContent(33<<20)) // 3 parts of 16 MiB
		scantest.Write(t, e.src, "b.txt", "bravo, edited")
		os.Rename(e.path("mv.txt"), e.path("moved.txt"))
		scantest.Write(t, e.src, "copy-of-a.txt", "alpha")
		os.Remove(e.path("old.txt"))
		os.RemoveAll(e.path("old2"))
		check(t, map[string]int64{"HeadBucket": 1, "PutObject": 3, "CreateMultipartUpload": 1, "UploadPart": 3,
			"CompleteMultipartUpload": 1, "CopyObject": 2, "DeleteObjects": 1})
	})
	t.Run("with --keep: a history copy of what an overwrite or a delete replaces", func(t *testing.T) {
		e.t = t
		scantest.Write(t, e.src, "a.txt", "alpha, edited")
		os.Remove(e.path("new2.txt"))
		check(t, map[string]int64{"HeadBucket": 1, "PutObject": 1, "CopyObject": 2, "DeleteObjects": 1}, keepArgs...)
	})
	t.Run("the human summary and status", func(t *testing.T) {
		e.t = t
		os.Remove(e.path("new1.txt"))
		dry := e.sync(0, "--dry-run")
		want := "would send 2 requests (1 DELETE batch, 1 HEAD bucket), 0 B; about $0.0000004 at S3 Standard prices"
		if dry.requests() != want {
			t.Fatalf("dry run's requests line %q, want %q", dry.requests(), want)
		}
		real := e.sync(0)
		if real.requests() != strings.Replace(want, "would send", "sent", 1) {
			t.Fatalf("real run's requests line %q", real.requests())
		}
		st := e.run(append([]string{"status"}, e.baseArgs()...)...)
		if !strings.Contains(st.stdout, "1 delete; 5 files unchanged; sent 2 requests (1 DELETE batch, 1 HEAD bucket), 0 B, about $0.0000004") {
			t.Fatalf("status does not show the last run's requests:\n%s", st.stdout)
		}
	})
}

// With a price file for objects in STANDARD_IA, an overwrite and a delete
// of objects uploaded minutes ago are charged for the rest of the 30 days,
// and the dry run says so.
func TestDryRunChargesEarlyDeletes(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"keep.txt": scantest.File{Content: "kept"},
		"edit.txt": scantest.File{Content: strings.Repeat("e", 1000)},
		"gone.txt": scantest.File{Content: strings.Repeat("g", 3000)},
	})
	prices := filepath.Join(t.TempDir(), "ia.prices")
	if err := os.WriteFile(prices, []byte("# objects moved to Standard-IA by a lifecycle rule\nname = S3 Standard-IA\nstorage_class = STANDARD_IA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.sync(0)
	scantest.Write(t, e.src, "edit.txt", "short now")
	os.Remove(e.path("gone.txt"))
	dry := e.sync(0, "--dry-run", "--price-file", prices)
	if l := dry.requests(); !strings.Contains(l, "at S3 Standard-IA prices, of which $") ||
		!strings.Contains(l, "for 2 objects (3.9 KiB) replaced before STANDARD_IA's 30 days") {
		t.Fatalf("requests line %q", l)
	}
	js := e.sync(0, "--dry-run", "--json", "--price-file", prices).costSummary(t)
	// 4,000 bytes for (almost) 30 days at $0.0125 per GiB-month.
	want := 4000.0 / (1 << 30) * 0.0125
	if c := js.Summary.Cost; c.EarlyObj != 2 || c.EarlyDelete < want*0.99 || c.EarlyDelete > want {
		t.Fatalf("early delete %+v, want 2 objects, about $%v", c, want)
	}
	if r := e.sync(2, "--dry-run", "--price-file", filepath.Join(t.TempDir(), "missing")); !strings.Contains(r.stderr, "price file") {
		t.Fatalf("a missing price file: %q", r.stderr)
	}
}

// What a dry run skips and the real run does first is counted where it can
// be known, and said where it cannot: the settle of a key an interrupted
// run left in doubt (its HEAD counted; what S3 answers changes the diff),
// and a reconcile that is due (its listing counted; its HEADs, none here,
// are not).
func TestDryRunSaysWhatItApproximates(t *testing.T) {
	e := newEnv(t, scantest.Dir{"keep.txt": scantest.File{Content: "keep"}})
	e.sync(0)
	scantest.Write(t, e.src, "new.txt", "a new file")
	e.killAfter("PutObject")

	dry := e.sync(0, "--dry-run", "--json").costSummary(t)
	real := e.sync(0, "--json").costSummary(t)
	if h := dry.Summary.Requests.ByOp["HeadObject"]; h != 1 || h != real.Summary.Requests.ByOp["HeadObject"] || h != e.seen()["HeadObject"] {
		t.Fatalf("HEADs of the settle: dry run %v, real run %v, server %v", dry.Summary.Requests.ByOp, real.Summary.Requests.ByOp, e.seen())
	}
	if a := strings.Join(dry.Summary.Approximated, "\n"); !strings.Contains(a, "keys left in doubt by an interrupted run (1)") {
		t.Fatalf("approximated %q, want the keys in doubt", a)
	}

	dry = e.sync(0, "--dry-run", "--json", "--reconcile-every", "1ns").costSummary(t)
	real = e.sync(0, "--json", "--reconcile-every", "1ns").costSummary(t)
	// The key settled stays watched for a while (uploader.SettleWatch):
	// each run asks about it again.
	want := map[string]int64{"GetBucketVersioning": 1, "HeadBucket": 1, "HeadObject": 1, "ListObjectsV2": 1}
	if fmt.Sprint(dry.Summary.Requests.ByOp) != fmt.Sprint(want) || fmt.Sprint(real.Summary.Requests.ByOp) != fmt.Sprint(want) ||
		fmt.Sprint(e.seen()) != fmt.Sprint(want) {
		t.Fatalf("a due reconcile: dry run %v, real run %v, server %v; want %v", dry.Summary.Requests.ByOp, real.Summary.Requests.ByOp, e.seen(), want)
	}
	if a := strings.Join(dry.Summary.Approximated, "\n"); !strings.Contains(a, "a reconcile is due") {
		t.Fatalf("approximated %q, want the reconcile", a)
	}
}

// The real run counts every attempt: a PUT answered 500 and retried is two
// PutObject requests, as the server saw them (the dry run said one).
func TestRunCountsRetries(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	var failed atomic.Bool
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "PutObject" && failed.CompareAndSwap(false, true) {
			return &s3test.Fault{Status: 500, Code: "InternalError"}
		}
		return nil
	})
	real := e.sync(0, "--json", "--retry-max-wait", "10ms").costSummary(t)
	if got, seen := real.Summary.Requests.ByOp, e.seen(); got["PutObject"] != 2 || fmt.Sprint(got) != fmt.Sprint(seen) {
		t.Fatalf("requests counted %v, server saw %v; want 2 PutObject", got, seen)
	}
}
