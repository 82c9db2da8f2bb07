package s3test

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"sync"
)

// Seen is a request as a Recorder saw it.
type Seen struct {
	Op     string // as Operation names it
	Path   string // /bucket/key
	Header http.Header
	Body   []byte // up to recordedBody bytes of it; the rest is not kept
}

// recordedBody is how much of a request's body a Recorder keeps.
const recordedBody = 64 << 10

// Recorder keeps the requests of some operations that a proxy forwards.
type Recorder struct {
	mu   sync.Mutex
	seen []Seen
}

// Record installs on p a fault function that disturbs nothing and
// records each request of one of ops (replacing any fault function set),
// and returns what it records.
func Record(p *Proxy, ops ...string) *Recorder {
	rec := &Recorder{}
	p.SetFault(func(r *http.Request) *Fault {
		if op := Operation(r); slices.Contains(ops, op) {
			seen := Seen{Op: op, Path: r.URL.Path, Header: r.Header.Clone()}
			if r.Body != nil && r.ContentLength >= 0 && r.ContentLength <= recordedBody {
				seen.Body, _ = io.ReadAll(r.Body)
				r.Body.Close()
				r.Body = io.NopCloser(bytes.NewReader(seen.Body)) // forwarded as it came
			}
			rec.mu.Lock()
			rec.seen = append(rec.seen, seen)
			rec.mu.Unlock()
		}
		return nil
	})
	return rec
}

// Seen returns the requests recorded so far, in the order they came.
func (r *Recorder) Seen() []Seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}
