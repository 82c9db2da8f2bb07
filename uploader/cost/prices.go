// Package cost prices what a run does to a bucket: its S3 requests, by the
// price class each operation is billed in, and the objects it overwrites
// or deletes before their storage class's minimum storage duration, which
// the provider charges as if they had stayed that long.
//
// The default Prices are Amazon S3's list prices in US East (N. Virginia),
// S3Standard; a price file (Load, Parse) sets other providers' prices,
// or the storage class the backup's objects are in:
//
//	# Wasabi pay-as-you-go: no request fees, 90 days minimum storage
//	name = Wasabi
//	request.PUT = 0
//	request.GET = 0
//	storage_class = STANDARD
//	gb_month.STANDARD = 0.0069
//	min_days.STANDARD = 90
package cost

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Request price classes, as S3's price list groups operations.
const (
	ClassPut    = "PUT"    // PUT, COPY, POST and LIST requests
	ClassGet    = "GET"    // GET, HEAD and every other request
	ClassDelete = "DELETE" // DELETE and CANCEL (abort) requests
)

// Prices are what a provider charges, in US dollars.
type Prices struct {
	// Name says whose prices these are, for output: "S3 Standard".
	Name string
	// PerThousand is the price of 1,000 requests, by class.
	PerThousand map[string]float64
	// Operations gives the class of an S3 operation ("PutObject"); an
	// operation not listed is in ClassGet.
	Operations map[string]string
	// StorageClass is the class the backup's objects are stored in.
	StorageClass string
	// PerGBMonth is the price of storing a GB (2^30 bytes) for a month
	// (30 days), by storage class.
	PerGBMonth map[string]float64
	// MinDays is the minimum storage duration, by storage class: an
	// object overwritten or deleted sooner is charged for the rest.
	MinDays map[string]float64
}

// PriceSource says where the default prices come from, and when.
const PriceSource = "aws.amazon.com/s3/pricing, US East (N. Virginia), list prices as published in 2025 " +
	"(storage: first 50 TB tier); requests as given in cloudkeeper issue 15, December 2026"

// S3Standard are Amazon S3's list prices in us-east-1 (see PriceSource),
// for objects in S3 Standard: PUT, COPY, POST and LIST $0.005 per 1,000
// requests, GET, HEAD and the others $0.0004, DELETE free; no charge for
// data sent in. The storage classes' prices per GB-month and minimum days
// are there for a price file that sets only storage_class (whose request
// prices then stay Standard's: set them too).
func S3Standard() Prices {
	return Prices{
		Name:        "S3 Standard",
		PerThousand: map[string]float64{ClassPut: 0.005, ClassGet: 0.0004, ClassDelete: 0},
		Operations: map[string]string{
			"PutObject": ClassPut, "CopyObject": ClassPut, "CreateMultipartUpload": ClassPut, "UploadPart": ClassPut,
			"UploadPartCopy": ClassPut, "CompleteMultipartUpload": ClassPut, "ListObjectsV2": ClassPut, "ListObjects": ClassPut,
			"ListMultipartUploads": ClassPut, "ListParts": ClassPut, "ListBuckets": ClassPut, "ListObjectVersions": ClassPut,
			// DELETE requests are free; DeleteObjects, a POST that carries
			// up to 1,000 deletes, is counted with them (a price file can
			// say otherwise: operation.DeleteObjects = PUT).
			"DeleteObject": ClassDelete, "DeleteObjects": ClassDelete, "AbortMultipartUpload": ClassDelete,
		},
		StorageClass: "STANDARD",
		PerGBMonth: map[string]float64{
			"STANDARD": 0.023, "INTELLIGENT_TIERING": 0.023, "STANDARD_IA": 0.0125, "ONEZONE_IA": 0.01,
			"GLACIER_IR": 0.004, "GLACIER": 0.0036, "DEEP_ARCHIVE": 0.00099,
		},
		MinDays: map[string]float64{"STANDARD_IA": 30, "ONEZONE_IA": 30, "GLACIER_IR": 90, "GLACIER": 90, "DEEP_ARCHIVE": 180},
	}
}

// Class is the price class of operation op.
func (p Prices) Class(op string) string {
	if c, ok := p.Operations[op]; ok {
		return c
	}
	return ClassGet
}

// Load reads a price file (see Parse).
func Load(path string) (Prices, error) {
	f, err := os.Open(path)
	if err != nil {
		return Prices{}, fmt.Errorf("price file: %w", err)
	}
	defer f.Close()
	p, err := Parse(f)
	if err != nil {
		return p, fmt.Errorf("price file %s: %w", path, err)
	}
	return p, nil
}

// StorageClasses are the storage classes of Amazon S3, which a price file
// may name without pricing them.
var StorageClasses = []string{"STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR",
	"GLACIER", "DEEP_ARCHIVE", "REDUCED_REDUNDANCY", "EXPRESS_ONEZONE"}

// Operations are the S3 operations a price file may give a class: those
// cloudkeeper sends, and the others a bill lists.
var Operations = []string{"AbortMultipartUpload", "CompleteMultipartUpload", "CopyObject", "CreateMultipartUpload",
	"DeleteObject", "DeleteObjects", "GetBucketLocation", "GetBucketVersioning", "GetObject", "GetObjectLockConfiguration", "GetObjectAttributes", "HeadBucket",
	"HeadObject", "ListBuckets", "ListMultipartUploads", "ListObjectVersions", "ListObjects", "ListObjectsV2",
	"ListParts", "PutObject", "RestoreObject", "UploadPart", "UploadPartCopy"}

// Parse reads a price file: KEY = VALUE lines, '#' starts a comment, and
// every key set replaces S3Standard's:
//
//	name = TEXT                 whose prices these are, for output
//	request.CLASS = USD         per 1,000 requests of CLASS (PUT, GET, DELETE)
//	operation.OPERATION = CLASS the class an S3 operation is billed in (see Operations)
//	storage_class = CLASS       the storage class of the backup's objects
//	gb_month.CLASS = USD        per GB-month stored in storage class CLASS
//	min_days.CLASS = DAYS       minimum storage duration of CLASS
//
// A storage class is one of StorageClasses or, for another provider, a
// class the file both names in storage_class and prices with gb_month or
// min_days. Anything else (a typo) is an error that names the line.
func Parse(r io.Reader) (Prices, error) {
	p := S3Standard()
	p.Name = "the price file's"
	var classes customClasses
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" || value == "" {
			return p, fmt.Errorf("line %d: %q is not KEY = VALUE", n, sc.Text())
		}
		if err := p.set(key, value); err != nil {
			return p, fmt.Errorf("line %d: %w", n, err)
		}
		classes.note(n, key, value)
	}
	if err := sc.Err(); err != nil {
		return p, err
	}
	return p, classes.check(p.StorageClass)
}

// customClasses are the storage classes not in StorageClasses that a
// price file names, with the line of each: one priced must be the
// storage_class, and the storage_class must be priced.
type customClasses struct {
	storageLine  int    // storage_class's line, if not a known class
	storageValue string // as written
	priced       map[string]int
	pricedKey    map[string]string
}

func (cc *customClasses) note(n int, key, value string) {
	if key == "storage_class" {
		cc.storageLine, cc.storageValue = 0, value
		if !slices.Contains(StorageClasses, strings.ToUpper(value)) {
			cc.storageLine = n
		}
		return
	}
	kind, name, _ := strings.Cut(key, ".")
	class := strings.ToUpper(name)
	if (kind == "gb_month" || kind == "min_days") && !slices.Contains(StorageClasses, class) {
		if cc.priced == nil {
			cc.priced, cc.pricedKey = map[string]int{}, map[string]string{}
		}
		if _, seen := cc.priced[class]; !seen {
			cc.priced[class], cc.pricedKey[class] = n, key
		}
	}
}

// check returns the error of the first line that names a class that is
// neither known nor the file's own.
func (cc *customClasses) check(storageClass string) error {
	known := strings.Join(StorageClasses, ", ")
	line, err := 0, error(nil)
	if _, priced := cc.priced[storageClass]; cc.storageLine > 0 && !priced {
		line = cc.storageLine
		err = fmt.Errorf("line %d: storage_class = %s: not a storage class (%s); another provider's class needs its gb_month.%s in this file",
			line, cc.storageValue, known, storageClass)
	}
	for class, n := range cc.priced {
		if class != storageClass && (line == 0 || n < line) {
			line = n
			err = fmt.Errorf("line %d: %s: %s is not a storage class (%s), nor this file's storage_class", n, cc.pricedKey[class], class, known)
		}
	}
	return err
}

// set sets one key of a price file.
func (p *Prices) set(key, value string) error {
	switch key {
	case "name":
		p.Name = value
		return nil
	case "storage_class":
		p.StorageClass = strings.ToUpper(value)
		return nil
	}
	kind, name, ok := strings.Cut(key, ".")
	if !ok || name == "" {
		return fmt.Errorf("unknown key %q", key)
	}
	if kind == "operation" {
		return p.setOperation(key, name, value)
	}
	targets := map[string]*map[string]float64{"request": &p.PerThousand, "gb_month": &p.PerGBMonth, "min_days": &p.MinDays}
	m, ok := targets[kind]
	if !ok {
		return fmt.Errorf("unknown key %q", key)
	}
	if kind == "request" && !isRequestClass(strings.ToUpper(name)) {
		return fmt.Errorf("%s: the request class is PUT, GET or DELETE", key)
	}
	v, err := strconv.ParseFloat(value, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%s = %s: want a number, 0 or more", key, value)
	}
	*m = maps.Clone(*m)
	(*m)[strings.ToUpper(name)] = v
	return nil
}

// setOperation sets the class of operation name (any case).
func (p *Prices) setOperation(key, name, value string) error {
	i := slices.IndexFunc(Operations, func(op string) bool { return strings.EqualFold(op, name) })
	if i < 0 {
		return fmt.Errorf("%s: not an S3 operation cloudkeeper knows (%s)", key, strings.Join(Operations, ", "))
	}
	class := strings.ToUpper(value)
	if !isRequestClass(class) {
		return fmt.Errorf("%s = %s: the class is PUT, GET or DELETE", key, value)
	}
	p.Operations = maps.Clone(p.Operations)
	p.Operations[Operations[i]] = class
	return nil
}

func isRequestClass(c string) bool { return c == ClassPut || c == ClassGet || c == ClassDelete }
