package s3test

import (
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a reverse proxy on a loopback port in front of an S3 endpoint. It
// forwards requests and responses as they stream, headers untouched
// (including Host, so SigV4 signatures made for the proxy's address verify at
// the target), counts them (Stats), can add a round trip to every request
// (SetDelay) and inject faults (SetFault). It is safe for concurrent use.
type Proxy struct {
	// URL is the proxy's endpoint, "http://127.0.0.1:PORT"; use it as the
	// S3 client's BaseEndpoint, with path-style addressing.
	URL string

	server    *http.Server
	transport *http.Transport
	proxy     *httputil.ReverseProxy
	fault     atomic.Pointer[func(*http.Request) *Fault]
	delay     atomic.Int64 // nanoseconds added to every request

	mu          sync.Mutex
	requests    int64
	byOp        map[string]int64
	inFlight    int64
	maxInFlight int64
	uploaded    atomic.Int64
}

// Fault is what SetFault's function returns to disturb one request. Delay is
// applied first; then Reset or Status, if set, answer the request instead of
// the target; otherwise the request is forwarded.
type Fault struct {
	// Status, if not zero, is the HTTP status of an S3-style XML error
	// answered without forwarding, e.g. 503. The request body is read
	// and discarded first, so that the client sees the error. A 2xx
	// Status is answered with no body: a success the target did not give
	// (202 Accepted to a RestoreObject, which the gateway does not
	// implement).
	Status int
	// Code is the error's S3 code, e.g. "SlowDown" or "InternalError".
	// Empty means one derived from Status: InternalError for 500,
	// otherwise the status text without spaces (ServiceUnavailable).
	Code string
	// Reset closes the client's connection abruptly (TCP RST where
	// possible) without answering.
	Reset bool
	// Delay is slept before anything else; it ends early if the client
	// gives up.
	Delay time.Duration
	// Answered, if set, is called once the target's answer to a forwarded
	// request has been relayed and flushed to the client: the moment a
	// test kills the client to open the window between S3 applying a
	// change and the client recording it.
	Answered func()
	// Applied, if set, is called once the target answered a forwarded
	// request, before anything of the answer is relayed: a test that
	// kills the client there opens that window without racing the
	// client's own record of the answer.
	Applied func()
}

// Stats are counts of the requests a Proxy has seen since it started or was
// last Reset.
type Stats struct {
	// Requests counts every request, forwarded or faulted.
	Requests int64
	// ByOp counts requests by S3 operation name, as Operation names them.
	ByOp map[string]int64
	// BytesUploaded is the number of request body bytes of PutObject and
	// UploadPart requests that went through to the target, as the client
	// encoded them (so including any aws-chunked framing). Bodies of
	// faulted requests are not counted, nor are CopyObject and
	// UploadPartCopy, which move no data through the proxy.
	BytesUploaded int64
	// MaxInFlight is the most requests the proxy held at once, from
	// their arrival until their answer was relayed (delays included).
	MaxInFlight int64
}

// NewProxy starts a proxy on a free 127.0.0.1 port forwarding to target, an
// http:// or https:// base URL such as a Gateway's Endpoint.
func NewProxy(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("gateway: proxy target: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway: proxy target %q: want http://host:port", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("gateway: proxy listener: %w", err)
	}

	p := &Proxy{URL: "http://" + ln.Addr().String(), byOp: map[string]int64{}}
	p.transport = http.DefaultTransport.(*http.Transport).Clone()
	p.transport.MaxIdleConnsPerHost = 1024 // clients keep hundreds in flight
	p.transport.Proxy = nil                // never via $HTTP_PROXY
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = u.Scheme
			r.Out.URL.Host = u.Host
			// Keep the Host header the client signed. Rewrite, unlike
			// Director, adds no X-Forwarded-* headers either.
			r.Out.Host = r.In.Host
		},
		Transport: p.transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil { // not just a client that gave up
				writeS3Error(w, http.StatusBadGateway, "BadGateway", "proxy: "+err.Error())
			}
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.server = &http.Server{
		Handler:           http.HandlerFunc(p.serve),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go p.server.Serve(ln) // returns http.ErrServerClosed on Close
	return p, nil
}

// Close stops the proxy, dropping connections in flight.
func (p *Proxy) Close() error {
	err := p.server.Close()
	p.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("gateway: closing proxy: %w", err)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Requests: p.requests, ByOp: make(map[string]int64, len(p.byOp)), BytesUploaded: p.uploaded.Load(), MaxInFlight: p.maxInFlight}
	for op, n := range p.byOp {
		s.ByOp[op] = n
	}
	return s
}

// Reset sets the counters to zero.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = 0
	p.maxInFlight = p.inFlight
	clear(p.byOp)
	p.uploaded.Store(0)
}

// SetFault installs f, which is called for every request from then on (on
// the request's own goroutine, so concurrently) and may return a Fault to
// disturb it, or nil to let it through. Operation(r) tells which S3 call r
// is. f must not read r's body. SetFault(nil) removes it.
func (p *Proxy) SetFault(f func(r *http.Request) *Fault) {
	if f == nil {
		p.fault.Store(nil)
		return
	}
	p.fault.Store(&f)
}

// SetDelay makes every request from then on wait d before anything else
// (a fault's own Delay comes after it), as a server d away would: the
// latency of a real network on loopback. 0 removes it.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	op := Operation(r)
	p.mu.Lock()
	p.requests++
	p.byOp[op]++
	p.inFlight++
	p.maxInFlight = max(p.maxInFlight, p.inFlight)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	if !sleep(r, time.Duration(p.delay.Load())) {
		return
	}
	p.handle(w, r, op)
}

// sleep waits d, and reports false if the client gave up meanwhile.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// handle applies the fault, if any, to r, or forwards it.
func (p *Proxy) handle(w http.ResponseWriter, r *http.Request, op string) {
	var answered func()
	if f := p.fault.Load(); f != nil {
		if fault := (*f)(r); fault != nil {
			answered = fault.Answered
			if fault.Applied != nil {
				w = &appliedWriter{ResponseWriter: w, applied: fault.Applied}
			}
			if !sleep(r, fault.Delay) {
				return
			}
			switch {
			case fault.Reset:
				resetConn(w)
				return
			case fault.Status != 0:
				code := fault.Code
				switch {
				case code != "":
				case fault.Status == http.StatusInternalServerError:
					code = "InternalError" // S3's name for it
				default: // e.g. ServiceUnavailable
					code = strings.ReplaceAll(http.StatusText(fault.Status), " ", "")
				}
				// Read the body first, as S3 does: clients send it
				// whether or not they sent Expect: 100-continue (the
				// SDK sends the header, but net/http ignores it on
				// the SDK's requests, which have no Proto), and
				// closing on an unread body makes their write fail
				// with a connection reset that hides the error.
				_, _ = io.Copy(io.Discard, r.Body)
				if fault.Status/100 == 2 {
					w.Header().Set("Content-Length", "0")
					w.WriteHeader(fault.Status)
					return
				}
				writeS3Error(w, fault.Status, code, "injected by the cloudkeeper test proxy")
				return
			}
		}
	}

	if (op == "PutObject" || op == "UploadPart") && r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingBody{ReadCloser: r.Body, n: &p.uploaded}
	}
	p.proxy.ServeHTTP(w, r)
	if answered != nil {
		_ = http.NewResponseController(w).Flush()
		answered()
	}
}

// countingBody adds the bytes read through it to n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	b.n.Add(int64(n))
	return n, err
}

// resetConn drops the connection under w without a response, with a TCP RST
// rather than an orderly close when it can.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // net/http closes the connection
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// writeS3Error answers with an S3 error document.
func writeS3Error(w http.ResponseWriter, status int, code, message string) {
	body, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string
		Message   string
		RequestId string
	}{Code: code, Message: message, RequestId: "cloudkeeper-proxy"})
	body = append([]byte(xml.Header), body...)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// subresources are query parameters that turn a bucket or object request
// into another operation (GET ?tagging is GetObjectTagging, not GetObject).
// Parameters not listed, such as x-id, versionId, partNumber, response-* or
// presigning's X-Amz-*, leave the operation as it is.
var subresources = []string{
	"accelerate", "acl", "analytics", "attributes", "cors", "encryption",
	"intelligent-tiering", "inventory", "legal-hold", "lifecycle", "location",
	"logging", "metadataTable", "metrics", "notification", "object-lock",
	"ownershipControls", "policy", "policyStatus", "publicAccessBlock",
	"replication", "requestPayment", "restore", "retention", "select",
	"session", "tagging", "torrent", "versioning", "versions", "website",
}

// Operation names the S3 operation of a path-style request (/bucket or
// /bucket/key): PutObject, CopyObject, UploadPart, UploadPartCopy,
// CreateMultipartUpload, CompleteMultipartUpload, AbortMultipartUpload,
// ListParts, DeleteObjects, DeleteObject, GetObject, HeadObject, ListBuckets,
// CreateBucket, DeleteBucket, HeadBucket, ListObjectsV2, ListObjects,
// ListMultipartUploads, GetBucketVersioning, ListObjectVersions, RestoreObject, or Other
// for anything else.
func Operation(r *http.Request) string {
	path := strings.TrimPrefix(r.URL.Path, "/")
	if path == "" {
		if r.Method == http.MethodGet {
			return "ListBuckets"
		}
		return "Other"
	}
	_, key, _ := strings.Cut(path, "/")
	q := r.URL.Query()
	has := func(name string) bool { _, ok := q[name]; return ok }
	if key == "" && r.Method == http.MethodGet && len(q) > 0 {
		switch {
		case has("versioning"):
			return "GetBucketVersioning"
		case has("versions"):
			return "ListObjectVersions"
		}
	}
	if key != "" && r.Method == http.MethodPost && has("restore") {
		return "RestoreObject"
	}
	for _, s := range subresources {
		if has(s) {
			return "Other"
		}
	}
	copying := r.Header.Get("X-Amz-Copy-Source") != ""

	if key == "" { // bucket
		switch r.Method {
		case http.MethodPut:
			if len(q) == 0 || (len(q) == 1 && has("x-id")) {
				return "CreateBucket"
			}
		case http.MethodDelete:
			return "DeleteBucket"
		case http.MethodHead:
			return "HeadBucket"
		case http.MethodGet:
			switch {
			case has("uploads"):
				return "ListMultipartUploads"
			case q.Get("list-type") == "2":
				return "ListObjectsV2"
			default:
				return "ListObjects"
			}
		case http.MethodPost:
			if has("delete") {
				return "DeleteObjects"
			}
		}
		return "Other"
	}

	switch r.Method { // object
	case http.MethodPut:
		switch {
		case has("partNumber") && has("uploadId") && copying:
			return "UploadPartCopy"
		case has("partNumber") && has("uploadId"):
			return "UploadPart"
		case has("partNumber") || has("uploadId"):
			return "Other"
		case copying:
			return "CopyObject"
		default:
			return "PutObject"
		}
	case http.MethodPost:
		switch {
		case has("uploads"):
			return "CreateMultipartUpload"
		case has("uploadId"):
			return "CompleteMultipartUpload"
		}
	case http.MethodDelete:
		if has("uploadId") {
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	case http.MethodGet:
		if has("uploadId") {
			return "ListParts"
		}
		return "GetObject"
	case http.MethodHead:
		return "HeadObject"
	}
	return "Other"
}

// appliedWriter calls applied before the first byte of the answer goes to
// the client (see Fault.Applied).
type appliedWriter struct {
	http.ResponseWriter
	applied func()
	once    sync.Once
}

func (w *appliedWriter) WriteHeader(code int) {
	w.once.Do(w.applied)
	w.ResponseWriter.WriteHeader(code)
}

func (w *appliedWriter) Write(b []byte) (int, error) {
	w.once.Do(w.applied)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *appliedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
