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
	"os"
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
			"ListMultipartUploads": ClassPut, "ListParts": ClassPut, "ListBuckets": ClassPut,
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

// Parse reads a price file: KEY = VALUE lines, '#' starts a comment, and
// every key set replaces S3Standard's:
//
//	name = TEXT                 whose prices these are, for output
//	request.CLASS = USD         per 1,000 requests of CLASS (PUT, GET, DELETE)
//	operation.OPERATION = CLASS the class an S3 operation is billed in
//	storage_class = CLASS       the storage class of the backup's objects
//	gb_month.CLASS = USD        per GB-month stored in storage class CLASS
//	min_days.CLASS = DAYS       minimum storage duration of CLASS
func Parse(r io.Reader) (Prices, error) {
	p := S3Standard()
	p.Name = "the price file's"
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
	}
	return p, sc.Err()
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
		class := strings.ToUpper(value)
		if class != ClassPut && class != ClassGet && class != ClassDelete {
			return fmt.Errorf("%s = %s: the class is PUT, GET or DELETE", key, value)
		}
		p.Operations = maps.Clone(p.Operations)
		p.Operations[name] = class
		return nil
	}
	targets := map[string]*map[string]float64{"request": &p.PerThousand, "gb_month": &p.PerGBMonth, "min_days": &p.MinDays}
	m, ok := targets[kind]
	if !ok {
		return fmt.Errorf("unknown key %q", key)
	}
	v, err := strconv.ParseFloat(value, 64)
	if err != nil || v < 0 {
		return fmt.Errorf("%s = %s: want a number, 0 or more", key, value)
	}
	*m = maps.Clone(*m)
	(*m)[strings.ToUpper(name)] = v
	return nil
}
