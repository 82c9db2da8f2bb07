package uploader

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/bwlimit"
)

// S3Config says how to reach the bucket.
type S3Config struct {
	Bucket string
	// Endpoint is the URL of an S3-compatible server; "" means AWS. With
	// an endpoint, requests use path-style addressing.
	Endpoint string
	// Region; with an Endpoint and no region, "us-east-1".
	Region string
	// Profile is a shared-config profile; "" means the default chain.
	Profile string
	// Credentials overrides the SDK's default chain when set.
	Credentials aws.CredentialsProvider
	// Log receives the SDK's own warnings (a credential source falling
	// back, a deprecated setting); nil leaves them on the SDK's stderr
	// logger.
	Log *slog.Logger
	// Concurrency caps the S3 requests in flight, retries and parts
	// included; 0 means AutoConcurrency. Within the cap, the limit adapts
	// to the server (see Inflight). It sizes the keep-alive pool.
	Concurrency int
	// Limit, if set, is told of each change of the limit on requests in
	// flight (see Inflight.Changed).
	Limit func(limit int)
	// PartSize is the size of multipart upload parts, and the size above
	// which a file is uploaded in parts. Default 16 MiB.
	PartSize int64
	// MaxSingleCopy is the largest object copied with one CopyObject;
	// larger ones are copied in parts (UploadPartCopy). Default and most
	// S3 allows: 5 GiB.
	MaxSingleCopy int64
	// CopyPartSize is the part size of those copies. Default 1 GiB.
	CopyPartSize int64
	// MaxAttempts is how many times a request is tried before its key is
	// reported as failed (the SDK's standard retryer, with exponential
	// backoff and jitter). Default 5.
	MaxAttempts int
	// MaxBackoff caps the wait between two attempts. Default 20 s.
	MaxBackoff time.Duration
	// Bandwidth, if set, limits the bytes of request bodies (uploads,
	// parts) as they go onto the wire, across all requests of the
	// client and of every other client built with the same Limiter.
	Bandwidth *bwlimit.Limiter
	// Lock, if set, gives every object written an Object Lock retention
	// of that long from its write, in LockMode (GOVERNANCE if ""): the
	// bucket must have Object Lock enabled (Check makes sure).
	Lock     time.Duration
	LockMode types.ObjectLockMode
	// SSE is the server-side encryption every write asks for (AES256 or
	// aws:kms; "" the bucket's default), with SSE-KMS the key SSEKMSKeyID
	// ("" the account's aws/s3 key). StorageClass is the class every
	// object is written in ("" the bucket's default, STANDARD). Copies
	// carry them too.
	SSE          types.ServerSideEncryption
	SSEKMSKeyID  string
	StorageClass types.StorageClass
}

// S3 is a Bucket on Amazon S3 or an S3-compatible server.
type S3 struct {
	client *s3.Client
	creds  aws.CredentialsProvider
	bucket string
	where  string // endpoint or "AWS region X", for messages
	// upload are the options of PutObject and UploadPart.
	upload   []func(*s3.Options)
	partSize int64
	maxCopy  int64 // larger objects are copied in parts
	copyPart int64
	// mem bounds the bytes of file content held in upload buffers.
	mem *memBudget
	// maxParts is the most parts of a multipart upload: S3's 10,000
	// (a field so that a test can reach part sizes above the budget).
	maxParts int64
	// lock and lockMode are S3Config's.
	lock     time.Duration
	lockMode types.ObjectLockMode
	// enc are the encryption and storage class headers of every write.
	enc encryption

	ready    sync.Once
	readyErr error

	requests *requestCounter // every request sent, by operation
	inflight *Inflight       // the requests in flight, every attempt
}

var _ Bucket = (*S3)(nil)

// maxParts is the most parts S3 takes in one multipart upload.
const maxParts = 10000

// DefaultPartSize is the multipart part size when none is set.
const DefaultPartSize = 16 << 20

// NewS3 builds the client. It sends nothing: Check (which every operation
// calls first, and a run calls at its start) proves the bucket answers.
func NewS3(ctx context.Context, c S3Config) (*S3, error) {
	if c.Bucket == "" {
		return nil, errors.New("no bucket: set --bucket or S3_BUCKET")
	}
	if err := CheckBucketName(c.Bucket); err != nil {
		return nil, err
	}
	if c.Endpoint != "" {
		if err := CheckEndpoint(c.Endpoint); err != nil {
			return nil, err
		}
	}
	enc := newEncryption(c)
	if err := enc.check(); err != nil {
		return nil, err
	}
	c.applyDefaults()
	inflight := NewInflight(c.Concurrency)
	inflight.Changed = c.Limit
	cfg, err := loadAWSConfig(ctx, c, inflight)
	if err != nil {
		return nil, err
	}
	requests := &requestCounter{}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		endpointOptions(ctx, c, o)
		o.APIOptions = append(o.APIOptions, requests.middleware)
	})
	where := c.Endpoint
	var upload []func(*s3.Options)
	if where == "" {
		where = "AWS region " + cfg.Region
	} else {
		// The body's integrity is the Content-MD5 we send, which SigV4
		// signs; hashing every byte again with SHA-256 for the signature
		// (what the SDK does on plain HTTP) costs client CPU that the
		// server, often on the same machine, needs more.
		upload = append(upload, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	}
	return &S3{
		client:   client,
		creds:    cfg.Credentials,
		bucket:   c.Bucket,
		where:    where,
		upload:   upload,
		partSize: c.PartSize,
		maxCopy:  c.MaxSingleCopy,
		copyPart: c.CopyPartSize,
		mem:      newMemBudget(c.memoryBudget()),
		maxParts: maxParts,
		lock:     c.Lock,
		lockMode: c.LockMode,
		enc:      enc,
		requests: requests,
		inflight: inflight,
	}, nil
}

// memoryBudget is the most bytes of file content held in parts and in
// files read whole (fileSlots at once, and spareBytes beyond): 4 to 8 parts
// (128 MiB at the default part size), whatever the number of requests in
// flight. Eight parts in flight fill a link of 1.6 GB/s at 80 ms a round
// trip.
func (c S3Config) memoryBudget() int64 {
	return int64(min(max(c.Concurrency, 4), 8)) * c.PartSize
}

// Inflight is the limit on this client's requests in flight.
func (b *S3) Inflight() *Inflight { return b.inflight }

// applyDefaults fills in the settings left zero.
func (c *S3Config) applyDefaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = AutoConcurrency
	}
	if c.PartSize <= 0 {
		c.PartSize = DefaultPartSize
	}
	if c.MaxSingleCopy <= 0 {
		c.MaxSingleCopy = MaxCopySize
	}
	if c.CopyPartSize <= 0 {
		c.CopyPartSize = 1 << 30
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 20 * time.Second
	}
	if c.Region == "" && c.Endpoint != "" {
		c.Region = "us-east-1"
	}
	if c.Lock > 0 && c.LockMode == "" {
		c.LockMode = types.ObjectLockModeGovernance
	}
}

// loadAWSConfig is the SDK's configuration for c: its HTTP client, whose
// requests in flight inflight limits, its retryer, and the region, profile
// and credentials.
func loadAWSConfig(ctx context.Context, c S3Config, inflight *Inflight) (aws.Config, error) {
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			// Keep-alive connections for every request in flight, so that
			// none waits for a new TCP (and TLS) handshake.
			t.MaxIdleConns = c.Concurrency
			t.MaxIdleConnsPerHost = c.Concurrency
			t.IdleConnTimeout = 90 * time.Second
			t.ResponseHeaderTimeout = 5 * time.Minute
		})
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = c.MaxAttempts
				o.MaxBackoff = c.MaxBackoff
				// The SDK's retry quota stops retrying after a burst of
				// failures (500 tokens, 5 a retry): right for a service
				// that sheds load, wrong for a backup that would rather
				// wait than fail thousands of keys. Backoff still spaces
				// the attempts out.
				o.RateLimiter = ratelimit.None
				// A plain-HTTP server's answer to TLS will not change.
				o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
					if plainHTTPAnswer(err) {
						return aws.FalseTernary
					}
					return aws.UnknownTernary
				})}, o.Retryables...)
			})
		}),
	}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if c.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(c.Credentials))
	}
	if c.Log != nil {
		opts = append(opts, config.WithLogger(sdkLogger{c.Log}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return cfg, ErrNoRegion
	}
	// Wrapped once loaded: loading configures the client itself (a CA
	// bundle from AWS_CA_BUNDLE), which a wrapper would hide. A request
	// holds its place in flight while the bandwidth limit paces its body.
	if c.Bandwidth != nil {
		cfg.HTTPClient = c.Bandwidth.Client(cfg.HTTPClient)
	}
	cfg.HTTPClient = limitedClient{next: cfg.HTTPClient, l: inflight}
	return cfg, nil
}

// endpointOptions sets the client up for an S3-compatible endpoint, if c
// names one.
func endpointOptions(ctx context.Context, c S3Config, o *s3.Options) {
	if c.Endpoint == "" {
		return
	}
	o.BaseEndpoint = aws.String(c.Endpoint)
	o.UsePathStyle = true
	// The SDK's default checksums (aws-chunked uploads with trailing
	// CRCs, since 2025) break many S3-compatible servers. Unless the user
	// chose otherwise, send them only where an operation requires them.
	// Uploads still carry Content-MD5, which every S3 server checks.
	req, resp := userChecksumChoice(ctx, c.Profile)
	if !req {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	}
	if !resp {
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}
}

// userChecksumChoice reports whether the user set the request checksum
// calculation and the response checksum validation, in the environment or
// the shared config profile. (The loaded config cannot tell: the SDK fills
// in its default, WhenSupported, when nothing is set.)
func userChecksumChoice(ctx context.Context, profile string) (request, response bool) {
	request = os.Getenv("AWS_REQUEST_CHECKSUM_CALCULATION") != ""
	response = os.Getenv("AWS_RESPONSE_CHECKSUM_VALIDATION") != ""
	if profile == "" {
		profile = os.Getenv("AWS_PROFILE")
	}
	if profile == "" {
		profile = "default"
	}
	if sc, err := config.LoadSharedConfigProfile(ctx, profile); err == nil {
		request = request || sc.RequestChecksumCalculation != aws.RequestChecksumCalculationUnset
		response = response || sc.ResponseChecksumValidation != aws.ResponseChecksumValidationUnset
	}
	return request, response
}

// Client is the underlying S3 client.
func (b *S3) Client() *s3.Client { return b.client }

// Check makes sure the credentials resolve and the bucket answers, once;
// every operation calls it first. Its errors are fatal and say what to do.
func (b *S3) Check(ctx context.Context) error {
	b.ready.Do(func() {
		if b.creds == nil {
			b.readyErr = &FatalError{Msg: "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"}
			return
		}
		if _, err := b.creds.Retrieve(ctx); err != nil {
			b.readyErr = &FatalError{Msg: "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)", Err: err}
			return
		}
		_, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b.bucket)})
		var re *awshttp.ResponseError
		if errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusForbidden || re.HTTPStatusCode() == http.StatusBadRequest) {
			// A HEAD answer has no body to say why: ask again with a GET,
			// whose error code tells bad credentials from missing rights,
			// or a request signed for the wrong region from a bad name.
			_, lerr := b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b.bucket), MaxKeys: aws.Int32(1)})
			if lerr != nil {
				err = lerr
			}
		}
		if err != nil {
			b.readyErr = b.fatal(err, true)
			if b.readyErr == nil {
				b.readyErr = fmt.Errorf("bucket %s at %s: %w", b.bucket, b.where, err)
			}
			return
		}
		b.readyErr = b.checkLock(ctx)
	})
	return b.readyErr
}

// Upload writes the file, in one PutObject or in parts. Every byte sent is
// read into memory first, so that Content-MD5 can be computed for the
// server to check and the BLAKE3 of exactly those bytes compared with
// u.Hash before the object is made visible.
func (b *S3) Upload(ctx context.Context, u Upload) (Written, error) {
	if err := b.Check(ctx); err != nil {
		return Written{}, err
	}
	if u.IsLink() {
		return b.uploadLink(ctx, u)
	}
	fsys := u.FS
	if fsys == nil {
		fsys = scanner.OS{}
	}
	f, err := fsys.Open(u.Path)
	if err != nil {
		return Written{}, err
	}
	defer f.Close()
	r := scanner.NewHashReader(f, u.Size)
	if b.uploadsInParts(u.Size) {
		return b.uploadParts(ctx, r, u)
	}
	return b.put(ctx, r, u)
}

// put uploads u, read from r, with one PutObject.
func (b *S3) put(ctx context.Context, r *scanner.HashReader, u Upload) (Written, error) {
	release, err := b.mem.file(ctx, u.Size)
	if err != nil {
		return Written{}, err
	}
	defer release()
	buf := make([]byte, u.Size)
	if err := readExactly(r, buf, u.Path); err != nil {
		return Written{}, err
	}
	if r.Sum() != u.Hash {
		return Written{}, changedError{u.Path}
	}
	return b.putObject(ctx, buf, u)
}

// putObject writes buf as u.Key, with u's metadata: one PutObject.
func (b *S3) putObject(ctx context.Context, buf []byte, u Upload) (Written, error) {
	lock := b.retention()
	out, err := b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         aws.String(b.bucket),
		Key:            aws.String(u.Key),
		Body:           bytes.NewReader(buf),
		ContentLength:  aws.Int64(u.Size),
		ContentMD5:     aws.String(md5Base64(buf)),
		Metadata:       u.Metadata(),
		ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: lock.until,
		ServerSideEncryption: b.enc.sse, SSEKMSKeyId: b.enc.kmsKey, StorageClass: b.enc.class,
	}, b.upload...)
	if err != nil {
		return Written{}, b.opError("upload", u.Key, err)
	}
	return lock.written(Written{ETag: unquote(out.ETag), VersionID: versionOf(out.VersionId), Sent: u.Size}), nil
}

// unquote is an ETag as S3 sends it ("\"hex\""), without its quotes, as
// listings give it too (ObjectInfo.ETag).
func unquote(etag *string) string { return strings.Trim(aws.ToString(etag), `"`) }

// changedError is a file whose bytes, read for upload, are not those the
// scan hashed. Nothing was recorded; it matches scanner.ErrChanged.
type changedError struct{ path string }

func (e changedError) Error() string {
	return e.path + ": changed during upload, will retry next run"
}

func (e changedError) Is(target error) bool { return target == scanner.ErrChanged }

// readExactly fills buf from f: a file that shrank since it was hashed has
// changed.
func readExactly(f io.Reader, buf []byte, path string) error {
	if _, err := io.ReadFull(f, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return changedError{path}
		}
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// checkEOF checks that f ends here: a file that grew since it was hashed
// has changed.
func checkEOF(f io.Reader, path string) error {
	var one [1]byte
	n, err := f.Read(one[:])
	if n > 0 {
		return changedError{path}
	}
	if err != nil && err != io.EOF {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

func md5Base64(b []byte) string {
	sum := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// uploadParts is a multipart upload with parts sent in parallel as they are
// read from r. With u.Resumes, the upload and each part S3 confirms are
// recorded as they go, and an upload recorded for this very file (see
// resume) is continued: the parts S3 holds are read again, to hash, and not
// sent. It completes only if the whole file hashed to u.Hash, and aborts
// otherwise, so no object with other bytes and no orphan parts remain.
func (b *S3) uploadParts(ctx context.Context, r *scanner.HashReader, u Upload) (w Written, err error) {
	partSize := b.uploadPartSize(u.Size)
	uploadID, kept, err := b.resume(ctx, u, partSize)
	if err != nil {
		return w, err
	}
	var lock retention // of an upload continued: not known
	if uploadID == "" {
		if uploadID, lock, err = b.createUpload(ctx, u, partSize); err != nil {
			return Written{}, err
		}
	}
	w.Kept = keptBytes(kept)
	w.Sent = u.Size - w.Kept
	defer func() {
		if err != nil {
			b.abortRecorded(ctx, u, uploadID, &err)
		}
	}()
	parts, err := b.sendParts(ctx, r, u, uploadID, partSize, kept)
	if err != nil {
		return Written{}, err
	}
	if err := checkEOF(r, u.Path); err != nil {
		return Written{}, err
	}
	if r.Sum() != u.Hash {
		return Written{}, changedError{u.Path}
	}
	if w, err = b.complete(ctx, u.Key, &uploadID, parts); err != nil {
		return Written{}, err
	}
	w = lock.written(w)
	w.Kept = keptBytes(kept)
	w.Sent = u.Size - w.Kept
	if u.Resumes != nil {
		// If this fails, the run's end aborts the record's upload, which
		// S3 no longer has, and drops the record (AbortLeftUploads).
		_ = u.Resumes.ForgetUpload(context.WithoutCancel(ctx), u.Key, uploadID)
	}
	return w, nil
}

// sendParts sends the parts of u that kept does not hold, in parallel as
// they are read from r, and returns them with those of kept.
func (b *S3) sendParts(ctx context.Context, r *scanner.HashReader, u Upload, uploadID string, partSize int64, kept map[int32]manifest.Part) ([]types.CompletedPart, error) {
	g, gctx := errgroup.WithContext(ctx)
	var parts []types.CompletedPart
	var mu sync.Mutex
	for num, off := int32(1), int64(0); off < u.Size; num, off = num+1, off+partSize {
		n := min(partSize, u.Size-off)
		if p, ok := kept[num]; ok {
			if err := rereadPart(r, u, p); err != nil {
				g.Wait()
				return nil, err
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{ETag: aws.String(`"` + p.ETag + `"`), PartNumber: aws.Int32(num)})
			mu.Unlock()
			continue
		}
		held, err := b.mem.part(gctx, n)
		if err != nil {
			g.Wait()
			return nil, err
		}
		buf := make([]byte, n)
		if err := readExactly(r, buf, u.Path); err != nil {
			b.mem.release(held)
			g.Wait()
			return nil, err
		}
		g.Go(func() error {
			defer b.mem.release(held)
			part, err := b.sendPart(gctx, u, uploadID, num, buf)
			if err != nil {
				return err
			}
			mu.Lock()
			parts = append(parts, part)
			mu.Unlock()
			return nil
		})
	}
	return parts, g.Wait()
}

// sendPart sends part num of u's upload and records it once S3 confirmed.
func (b *S3) sendPart(ctx context.Context, u Upload, uploadID string, num int32, buf []byte) (types.CompletedPart, error) {
	sum := md5.Sum(buf)
	out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        aws.String(b.bucket),
		Key:           aws.String(u.Key),
		UploadId:      aws.String(uploadID),
		PartNumber:    aws.Int32(num),
		Body:          bytes.NewReader(buf),
		ContentLength: aws.Int64(int64(len(buf))),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	}, b.upload...)
	if err != nil {
		return types.CompletedPart{}, b.opError(fmt.Sprintf("upload part %d of", num), u.Key, err)
	}
	if u.Resumes != nil {
		p := manifest.Part{Number: num, Size: int64(len(buf)), ETag: unquote(out.ETag), MD5: hex.EncodeToString(sum[:])}
		if err := u.Resumes.AddPart(ctx, u.Key, uploadID, p); err != nil {
			return types.CompletedPart{}, err
		}
	}
	return types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)}, nil
}

// Copy copies from to o.Key on the server with o's metadata: one
// CopyObject, or for objects over MaxSingleCopy a multipart upload whose
// parts are copied on the server (UploadPartCopy). Nothing goes through
// this machine either way.
func (b *S3) Copy(ctx context.Context, from string, o Object) (Written, error) {
	if err := b.Check(ctx); err != nil {
		return Written{}, err
	}
	if err := b.linkTarget(ctx, from, &o); err != nil {
		return Written{}, err
	}
	inParts, err := b.copiesInParts(from, o)
	if err != nil {
		return Written{}, err
	}
	if inParts {
		return b.copyParts(ctx, from, o)
	}
	lock := b.retention()
	out, err := b.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            aws.String(b.bucket),
		Key:               aws.String(o.Key),
		CopySource:        aws.String(copySource(b.bucket, from)),
		MetadataDirective: types.MetadataDirectiveReplace,
		Metadata:          o.Metadata(),
		ObjectLockMode:    lock.mode, ObjectLockRetainUntilDate: lock.until,
		ServerSideEncryption: b.enc.sse, SSEKMSKeyId: b.enc.kmsKey, StorageClass: b.enc.class,
	})
	if err != nil {
		return Written{}, b.copyError(from, o.Key, err)
	}
	w := Written{VersionID: versionOf(out.VersionId)}
	if out.CopyObjectResult != nil {
		w.ETag = unquote(out.CopyObjectResult.ETag)
	}
	return lock.written(w), nil
}

// copyError is opError for a copy, with a missing source told apart.
func (b *S3) copyError(from, to string, err error) error {
	var nk *types.NoSuchKey
	var ae smithy.APIError
	if errors.As(err, &nk) || errors.As(err, &ae) && ae.ErrorCode() == "NoSuchKey" {
		return fmt.Errorf("copy %s to %s: %w", from, to, ErrSourceMissing)
	}
	return b.opError("copy "+from+" to", to, err)
}

// copyParts copies a large object in parts on the server, aborting the
// multipart upload if any part fails.
func (b *S3) copyParts(ctx context.Context, from string, o Object) (w Written, err error) {
	partSize := b.copyPartSize(o.Size)
	lock := b.retention()
	created, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(b.bucket), Key: aws.String(o.Key), Metadata: o.Metadata(),
		ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: lock.until,
		ServerSideEncryption: b.enc.sse, SSEKMSKeyId: b.enc.kmsKey, StorageClass: b.enc.class,
	})
	if err != nil {
		return Written{}, b.opError("copy "+from+" to", o.Key, err)
	}
	defer func() {
		if err != nil {
			b.abort(ctx, o.Key, created.UploadId, &err)
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	var mu sync.Mutex
	var parts []types.CompletedPart
	src := copySource(b.bucket, from)
	for num, off := int32(1), int64(0); off < o.Size; num, off = num+1, off+partSize {
		end := min(off+partSize, o.Size) - 1
		g.Go(func() error {
			out, err := b.client.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket: aws.String(b.bucket), Key: aws.String(o.Key), UploadId: created.UploadId,
				PartNumber: aws.Int32(num), CopySource: aws.String(src),
				CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
			})
			if err != nil {
				if cerr := b.copyError(from, o.Key, err); errors.Is(cerr, ErrSourceMissing) {
					return cerr
				}
				return b.opError(fmt.Sprintf("copy part %d of %s to", num, from), o.Key, err)
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(num)})
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Written{}, err
	}
	w, err = b.complete(ctx, o.Key, created.UploadId, parts)
	return lock.written(w), err
}

// complete finishes a multipart upload with its parts in order, and
// returns what S3 answered of the object.
func (b *S3) complete(ctx context.Context, key string, uploadID *string, parts []types.CompletedPart) (Written, error) {
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	out, err := b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(b.bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return Written{}, b.opError("complete upload of", key, err)
	}
	return Written{ETag: unquote(out.ETag), VersionID: versionOf(out.VersionId)}, nil
}

// abort aborts a multipart upload even if ctx is done (orphan parts cost
// money), adding its failure to *err.
func (b *S3) abort(ctx context.Context, key string, uploadID *string, err *error) {
	if aerr := b.sendAbort(ctx, key, aws.ToString(uploadID)); aerr != nil {
		*err = fmt.Errorf("%w (and aborting the multipart upload %s failed: %v)", *err, aws.ToString(uploadID), aerr)
	}
}

// sendAbort sends one AbortMultipartUpload, even if ctx is done; an upload
// already gone is not an error.
func (b *S3) sendAbort(ctx context.Context, key, uploadID string) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := b.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(b.bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
	})
	if err != nil && !isNoSuchUpload(err) {
		return err
	}
	return nil
}

// copySource is the x-amz-copy-source value: bucket/key, URL-encoded
// except for '/' and the unreserved characters.
func copySource(bucket, key string) string {
	var sb strings.Builder
	sb.WriteString(bucket)
	sb.WriteByte('/')
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			sb.WriteByte(c)
		} else {
			fmt.Fprintf(&sb, "%%%02X", c)
		}
	}
	return sb.String()
}

// Delete deletes keys with one DeleteObjects request.
func (b *S3) Delete(ctx context.Context, keys []string) ([]KeyError, error) {
	objs := make([]types.ObjectIdentifier, len(keys))
	for i, k := range keys {
		objs[i] = types.ObjectIdentifier{Key: aws.String(k)}
	}
	errs, err := b.deleteObjects(ctx, objs)
	var failed []KeyError
	for _, e := range errs {
		failed = append(failed, KeyError{Key: aws.ToString(e.Key), Err: fmt.Errorf("%s: %s", aws.ToString(e.Code), aws.ToString(e.Message))})
	}
	return failed, err
}

// deleteObjects sends one DeleteObjects of objs, and returns the errors
// of the objects S3 did not delete.
func (b *S3) deleteObjects(ctx context.Context, objs []types.ObjectIdentifier) ([]types.Error, error) {
	if len(objs) == 0 {
		return nil, nil
	}
	if len(objs) > MaxDeleteBatch {
		return nil, fmt.Errorf("delete: %d keys in one batch, at most %d", len(objs), MaxDeleteBatch)
	}
	if err := b.Check(ctx); err != nil {
		return nil, err
	}
	out, err := b.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(b.bucket),
		Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return nil, b.opError(fmt.Sprintf("delete %d keys, first", len(objs)), aws.ToString(objs[0].Key), err)
	}
	return out.Errors, nil
}

// sdkLogger writes the SDK's log lines to a slog.Logger, at Debug, so
// that they take the command's format (one JSON object a line with
// --log-format json) and show with -v.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	// Debug, warnings too: they are about the SDK's own ways (off EC2,
	// "falling back to IMDSv1" before a missing-credentials error), and a
	// failure that matters is the command's own error line.
	l.log.Debug("AWS SDK: "+fmt.Sprintf(format, v...), "level", string(c))
}
