package cost

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// 4,140 PUT-class requests, one HEAD and a delete batch at S3 Standard
// list prices: 4,141 × $0.005/1000 + 1 × $0.0004/1000, deletes free.
func TestRequestsAtS3StandardPrices(t *testing.T) {
	req := manifest.Requests{ByOp: map[string]int64{
		"PutObject": 4000, "CreateMultipartUpload": 10, "UploadPart": 110, "CompleteMultipartUpload": 10,
		"CopyObject": 8, "ListObjectsV2": 2, "HeadBucket": 1, "DeleteObjects": 3, "AbortMultipartUpload": 1,
	}}
	e := S3Standard().Estimate(req, Replaced{})
	want := 4140*0.005/1000 + 1*0.0004/1000
	if !near(e.Requests, want) || !near(e.Total, want) || e.EarlyDelete != 0 || e.Prices != "S3 Standard" {
		t.Fatalf("estimate %+v, want $%v for the requests", e, want)
	}
}

// An overwrite or delete before the class's minimum storage duration is
// charged for the days left; older objects, and objects in a class
// without a minimum, are not.
func TestEarlyDeleteChargedForTheDaysLeft(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var rep Replaced
	rep.Add(gib, now.Add(-10*24*time.Hour), now)   // 20 days left of 30
	rep.Add(3*gib, now.Add(-40*24*time.Hour), now) // past the minimum
	rep.Add(5, time.Time{}, now)                   // upload time not known
	p, err := Parse(strings.NewReader("storage_class = standard_ia  # by a lifecycle rule\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := p.Estimate(manifest.Requests{}, rep)
	want := 0.0125 * 20.0 / 30
	if !near(e.EarlyDelete, want) || e.EarlyObjects != 1 || e.EarlyBytes != gib || e.UnknownAge != 1 || e.MinDays != 30 {
		t.Fatalf("estimate %+v, want $%v for one object of 1 GiB", e, want)
	}
	if e := S3Standard().Estimate(manifest.Requests{}, rep); e.EarlyDelete != 0 || e.EarlyObjects != 0 {
		t.Fatalf("S3 Standard has no minimum: %+v", e)
	}
}

func TestAddChangeCountsWhatIsOverwrittenOrDeleted(t *testing.T) {
	now := time.Now()
	row := func(size int64) *manifest.Entry {
		e := manifest.Entry{UploadedNs: now.Add(-time.Hour).UnixNano()}
		e.Stat.Size = size
		return &e
	}
	var rep Replaced
	rep.AddChange(manifest.Change{Op: manifest.OpAdd, Entry: *row(1)}, now)                    // nothing replaced
	rep.AddChange(manifest.Change{Op: manifest.OpModify, Entry: *row(2), Prev: row(10)}, now)  // 10
	rep.AddChange(manifest.Change{Op: manifest.OpDelete, Entry: *row(20), Prev: row(20)}, now) // 20
	rep.AddChange(manifest.Change{Op: manifest.OpRename, Entry: *row(40), Gone: row(40)}, now) // 40
	rep.AddChange(manifest.Change{Op: manifest.OpTouch, Entry: *row(80), Prev: row(80)}, now)  // same metadata: no copy
	e := Prices{StorageClass: "X", MinDays: map[string]float64{"X": 1}, PerGBMonth: map[string]float64{"X": 1}}.Estimate(manifest.Requests{}, rep)
	if e.EarlyObjects != 3 || e.EarlyBytes != 70 {
		t.Fatalf("replaced %d objects, %d bytes; want 3, 70", e.EarlyObjects, e.EarlyBytes)
	}
}

func TestPriceFile(t *testing.T) {
	p, err := Parse(strings.NewReader(`
# Wasabi: no request fees, 90 days minimum
name = Wasabi
request.PUT = 0
request.GET = 0
operation.DeleteObjects = PUT
gb_month.STANDARD = 0.0069
min_days.STANDARD = 90
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "Wasabi" || p.PerThousand["PUT"] != 0 || p.Class("DeleteObjects") != ClassPut || p.MinDays["STANDARD"] != 90 ||
		p.PerGBMonth["STANDARD"] != 0.0069 || p.StorageClass != "STANDARD" || p.PerThousand["DELETE"] != 0 {
		t.Fatalf("prices %+v", p)
	}
	if S3Standard().Class("DeleteObjects") != ClassDelete {
		t.Fatal("the price file changed the defaults")
	}
	for _, bad := range []string{"request.PUT", "request.PUT = cheap", "request.PUT = -1", "colour = blue", "operation.PutObject = FREE", "gb_month = 1"} {
		if _, err := Parse(strings.NewReader("\n" + bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: error %v, want one for line 2", bad, err)
		}
	}
}

// A typo in a price file, or a number no price is, is refused with the
// line and what is allowed; it would otherwise price nothing (request.PUTT,
// operation.PutObjekt) or drop the early-delete charge (STANDARD-IA).
func TestPriceFileRefusesTyposAndNonNumbers(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		{"request.PUTT = 0.01", `line 2: request.PUTT: the request class is PUT, GET or DELETE`},
		{"operation.PutObjekt = PUT", `line 2: operation.PutObjekt: not an S3 operation cloudkeeper knows (AbortMultipartUpload, `},
		{"gb_month.STANDARD_IAA = 1", `line 2: gb_month.STANDARD_IAA: STANDARD_IAA is not a storage class (STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE, REDUCED_REDUNDANCY, EXPRESS_ONEZONE`},
		{"storage_class = STANDARD-IA", `line 2: storage_class = STANDARD-IA: not a storage class (STANDARD, STANDARD_IA,`},
		{"min_days.GLACIR = 90", `line 2: min_days.GLACIR: GLACIR is not a storage class`},
		{"request.PUT = NaN", `line 2: request.PUT = NaN: want a number, 0 or more`},
		{"request.GET = Inf", `line 2: request.GET = Inf: want a number, 0 or more`},
		{"gb_month.STANDARD = -0.01", `line 2: gb_month.STANDARD = -0.01: want a number, 0 or more`},
		{"min_days.STANDARD = +Inf", `want a number, 0 or more`},
	} {
		_, err := Parse(strings.NewReader("# typo\n" + c.file + "\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.file, err, c.want)
		}
	}
	// Another provider's class, priced in the same file, is its own.
	p, err := Parse(strings.NewReader("storage_class = hot\ngb_month.HOT = 0.006\nmin_days.HOT = 90\n"))
	if err != nil || p.StorageClass != "HOT" || p.MinDays["HOT"] != 90 {
		t.Fatalf("a custom class: %+v, %v", p, err)
	}
	if _, err := Parse(strings.NewReader("storage_class = hot\n")); err == nil || !strings.Contains(err.Error(), "line 1: storage_class = hot: not a storage class") {
		t.Fatalf("a custom class without its price: %v", err)
	}
	for _, ok := range []string{"operation.HeadObject = GET", "operation.listobjectsv2 = PUT", "storage_class = standard_ia", "gb_month.EXPRESS_ONEZONE = 0.16", "request.delete = 0"} {
		if _, err := Parse(strings.NewReader(ok + "\n")); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}
