package manifest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Requests are the S3 requests of a run: how many of each operation, as S3
// names it ("PutObject", "UploadPart", "DeleteObjects", ...), every attempt
// counted, retries included; and the bytes of file content they carried.
// A dry run's are those the real run would send. The zero value is empty.
type Requests struct {
	ByOp map[string]int64 `json:"by_op"`
	// Bytes is the body bytes of PutObject and UploadPart requests.
	Bytes int64 `json:"bytes_sent"`
}

// Add counts n requests of operation op.
func (r *Requests) Add(op string, n int64) {
	if n == 0 {
		return
	}
	if r.ByOp == nil {
		r.ByOp = map[string]int64{}
	}
	r.ByOp[op] += n
}

// Plus returns r with the requests and bytes of o added.
func (r Requests) Plus(o Requests) Requests {
	sum := Requests{Bytes: r.Bytes + o.Bytes}
	for _, m := range []map[string]int64{r.ByOp, o.ByOp} {
		for op, n := range m {
			sum.Add(op, n)
		}
	}
	return sum
}

// Total is the number of requests.
func (r Requests) Total() int64 {
	var n int64
	for _, v := range r.ByOp {
		n += v
	}
	return n
}

// Ops are the operations counted, sorted by name.
func (r Requests) Ops() []string { return slices.Sorted(maps.Keys(r.ByOp)) }

// encodeRequests is the runs table's form of r.ByOp: a JSON object.
func encodeRequests(r Requests) string {
	if len(r.ByOp) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(r.ByOp) // a map of strings to integers always encodes
	return string(b)
}

// decodeRequests reads what encodeRequests wrote.
func decodeRequests(s string, bytes int64) (Requests, error) {
	r := Requests{Bytes: bytes}
	if s == "" || s == "{}" {
		return r, nil
	}
	if err := json.Unmarshal([]byte(s), &r.ByOp); err != nil {
		return r, fmt.Errorf("requests %q: %w", s, err)
	}
	return r, nil
}
