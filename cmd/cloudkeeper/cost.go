package main

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/cost"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
)

const flagPriceFile = "price-file"

func priceFileFlag() cli.Flag {
	return &cli.StringFlag{Name: flagPriceFile, EnvVars: []string{"CLOUDKEEPER_PRICE_FILE"},
		Usage: "price requests and early deletes with the prices in `FILE` (KEY = VALUE lines, see the README) instead of S3 Standard's in us-east-1"}
}

// loadPrices reads --price-file into the printer, if set.
func (p *printer) loadPrices(c *cli.Context) error {
	path := c.String(flagPriceFile)
	if path == "" {
		return nil
	}
	prices, err := cost.Load(path)
	if err != nil {
		return usageError{err}
	}
	p.prices = &prices
	return nil
}

// pricesOrDefault are --price-file's prices, or S3 Standard's.
func (p *printer) pricesOrDefault() cost.Prices {
	if p.prices != nil {
		return *p.prices
	}
	return cost.S3Standard()
}

// jsonRequests are the keys of the JSON summary that tell what the run
// sent, or would send, and what that costs.
type jsonRequests struct {
	Requests     manifest.Requests `json:"requests"`
	RequestTotal int64             `json:"request_total"`
	Cost         cost.Estimate     `json:"cost"`
	// Approximated says what a dry run's requests leave out or guess.
	Approximated []string `json:"approximated,omitempty"`
}

func (p *printer) requestsJSON(res mirror.Result) jsonRequests {
	return jsonRequests{Requests: res.Requests, RequestTotal: res.Requests.Total(), Cost: res.Estimate(p.pricesOrDefault()),
		Approximated: res.Approximated}
}

// printRequests prints the summary's requests line and logs what a dry
// run's estimate approximates.
func (p *printer) printRequests(res mirror.Result) {
	p.println(p.requestsLine(res))
	for _, a := range res.Approximated {
		p.log.Info("the request estimate approximates", "what", a)
	}
}

// requestsLine is the summary's second line: "would send 9 requests
// (2 PUT, 1 multipart upload: 3 parts, 1 HEAD), 12.0 MiB; about $0.000047
// at S3 Standard prices".
func (p *printer) requestsLine(res mirror.Result) string {
	verb := "sent"
	if res.DryRun {
		verb = "would send"
	}
	line := verb + " " + requestsText(res.Requests)
	e := res.Estimate(p.pricesOrDefault())
	line += "; about " + usd(e.Total) + " at " + e.Prices + " prices"
	if e.EarlyObjects > 0 {
		line += ", of which " + usd(e.EarlyDelete) + " for " + human.Count(e.EarlyObjects, "object", "objects") +
			" (" + human.Bytes(e.EarlyBytes) + ") replaced before " + e.StorageClass + "'s " + strconv.FormatFloat(e.MinDays, 'f', -1, 64) + " days"
	}
	return line
}

// requestsText is "9 requests (2 PUT, 1 HEAD), 12.0 MiB".
func requestsText(r manifest.Requests) string {
	s := human.Count(r.Total(), "request", "requests")
	var parts []string
	ops := r.Ops()
	slices.SortStableFunc(ops, func(a, b string) int { return cmp.Compare(opOrder(a), opOrder(b)) })
	for _, op := range ops {
		parts = append(parts, human.Thousands(r.ByOp[op])+" "+opLabel(op, r.ByOp[op]))
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s + ", " + human.Bytes(r.Bytes)
}

// shownOps are the operations of a sync in the order they are shown: the
// writes as they go out, then the reads; others follow, by name.
var shownOps = []string{"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
	"CompleteMultipartUpload", "AbortMultipartUpload", "DeleteObjects", "HeadBucket", "HeadObject", "ListObjectsV2",
	"ListMultipartUploads", "ListParts", "GetObject"}

func opOrder(op string) int {
	if i := slices.Index(shownOps, op); i >= 0 {
		return i
	}
	return len(shownOps)
}

// opLabel is how an S3 operation is named for people: by its price
// list's word where there is one.
func opLabel(op string, n int64) string {
	labels := map[string][2]string{
		"PutObject": {"PUT", "PUT"}, "CopyObject": {"COPY", "COPY"}, "HeadBucket": {"HEAD bucket", "HEAD bucket"},
		"HeadObject": {"HEAD", "HEAD"}, "ListObjectsV2": {"LIST", "LIST"}, "GetObject": {"GET", "GET"},
		"DeleteObjects":           {"DELETE batch", "DELETE batches"},
		"CreateMultipartUpload":   {"multipart create", "multipart creates"},
		"UploadPart":              {"part", "parts"},
		"UploadPartCopy":          {"part copy", "part copies"},
		"CompleteMultipartUpload": {"multipart complete", "multipart completes"},
		"AbortMultipartUpload":    {"multipart abort", "multipart aborts"},
		"ListMultipartUploads":    {"multipart LIST", "multipart LIST"},
		"ListParts":               {"parts LIST", "parts LIST"},
	}
	l, ok := labels[op]
	switch {
	case !ok:
		return op
	case n == 1:
		return l[0]
	default:
		return l[1]
	}
}

// usd is an amount of dollars with two significant digits below a cent:
// "$0.02", "$0.000047", "$0".
func usd(v float64) string {
	switch {
	case v == 0:
		return "$0"
	case v >= 0.01:
		return "$" + strconv.FormatFloat(v, 'f', 2, 64)
	default:
		decimals := int(-math.Floor(math.Log10(v))) + 1
		return "$" + strings.TrimRight(strconv.FormatFloat(v, 'f', decimals, 64), "0")
	}
}

// runRequests is what status says of a recorded run's requests: "; sent 9
// requests (...), 12.0 MiB, about $0.000047"; nothing for a run recorded
// before they were counted.
func runRequests(r manifest.Requests, prices cost.Prices) string {
	if r.Total() == 0 {
		return ""
	}
	return "; sent " + requestsText(r) + ", about " + usd(prices.Estimate(r, cost.Replaced{}).Total)
}
