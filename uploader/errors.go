package uploader

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// FatalError is a failure that no other key would escape: a missing
// bucket, rejected credentials, an unreachable endpoint. It ends the run.
type FatalError struct {
	Msg string
	Err error
}

func (e *FatalError) Error() string { return e.Msg }
func (e *FatalError) Unwrap() error { return e.Err }

// ErrKeyConflict is a write refused because the key is also a "folder" of
// other keys, or one of its parents is an object. Amazon S3 has no such
// rule, but servers that store objects as files (Versity's posix backend,
// MinIO) do: when a file becomes a folder or the reverse, the old keys
// must go before the new one can be written.
var ErrKeyConflict = errors.New("the key is a file where the server needs a folder, or the reverse")

// ErrArchived is an object in an archive storage class (GLACIER,
// DEEP_ARCHIVE, or an archive tier of INTELLIGENT_TIERING) that S3 will
// neither read nor copy until it is restored (RestoreObject): S3 answers
// 403 InvalidObjectState, or to a CopyObject 403
// ObjectNotInActiveTierError. Its HEAD and its listing work.
var ErrArchived = errors.New("in an archive storage class, not readable nor copyable until restored (RestoreObject)")

// archivedCodes are S3's error codes of ErrArchived.
var archivedCodes = map[string]bool{
	"InvalidObjectState":         true, // GetObject, UploadPartCopy
	"ObjectNotInActiveTierError": true, // CopyObject (AWS's API reference; moto)
}

// conflictCodes are the error codes of ErrKeyConflict.
var conflictCodes = map[string]bool{
	"ObjectParentIsFile":            true, // Versity
	"ExistingObjectIsDirectory":     true, // Versity
	"XMinioParentIsObject":          true, // MinIO
	"XMinioObjectExistsAsDirectory": true,
}

// IsFatal reports whether err should end the run.
func IsFatal(err error) bool {
	var f *FatalError
	return errors.As(err, &f)
}

// opError wraps an SDK error of an operation on key: a FatalError with a
// one-line explanation if the whole run is doomed, or else an error naming
// the operation and key with the server's code and message.
func (b *S3) opError(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if f := b.fatal(err, false); f != nil {
		return f
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if archivedCodes[ae.ErrorCode()] {
			return fmt.Errorf("%s %s: %w", op, key, ErrArchived)
		}
		if conflictCodes[ae.ErrorCode()] {
			return fmt.Errorf("%s %s: %s: %w", op, key, ae.ErrorCode(), ErrKeyConflict)
		}
		return fmt.Errorf("%s %s: %s: %s", op, key, ae.ErrorCode(), ae.ErrorMessage())
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

// fatal returns a FatalError if err means no request to this bucket can
// succeed, and nil otherwise. Network errors count only when reaching is
// set (the first request): later, a reset connection is one key's failure.
func (b *S3) fatal(err error, reaching bool) error {
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	if f := b.wrongScheme(err, reaching && (status == http.StatusBadRequest || strings.Contains(err.Error(), "malformed HTTP response"))); f != nil {
		return f
	}
	bucket := fmt.Sprintf("bucket %q at %s", b.bucket, b.where)
	switch {
	case code == "NoSuchBucket" || reaching && (code == "NotFound" || code == "") && status == http.StatusNotFound:
		// A 404 without a code says "no such bucket" only to HeadBucket; to
		// HeadObject it means no such key.
		return &FatalError{Msg: bucket + " does not exist: create it, or check --bucket / S3_BUCKET", Err: err}
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "InvalidToken" ||
		code == "ExpiredToken" || code == "TokenRefreshRequired":
		return &FatalError{Msg: fmt.Sprintf("%s rejected the credentials (%s): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the profile", bucket, code), Err: err}
	case archivedCodes[code]: // a 403, but the object's alone
		return nil
	case code == "AccessDenied" || status == http.StatusForbidden:
		return &FatalError{Msg: fmt.Sprintf("%s denied access: check the credentials and that they may read, write and delete in the bucket", bucket), Err: err}
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || status == http.StatusMovedPermanently:
		if m := expectedRegion.FindStringSubmatch(err.Error()); m != nil {
			return &FatalError{Msg: fmt.Sprintf("%s expects the region %s: set --region or AWS_REGION=%s", bucket, m[1], m[1]), Err: err}
		}
		return &FatalError{Msg: bucket + " is in another region: set --region or AWS_REGION to the bucket's region", Err: err}
	case code == "RequestTimeTooSkewed":
		return &FatalError{Msg: bucket + ": this machine's clock is too far off for S3 to accept requests: fix the clock", Err: err}
	case reaching && status == http.StatusBadRequest:
		// The first request is HeadBucket, whose answer has no body: a 400
		// is the name, or AWS's answer to a request signed for another
		// region or with an expired session token.
		return &FatalError{Msg: bucket + ": the server answers 400 Bad Request: check the bucket name (--bucket / S3_BUCKET), the region (--region / AWS_REGION) and, with temporary credentials, that AWS_SESSION_TOKEN has not expired", Err: err}
	case strings.Contains(err.Error(), "get identity:"):
		return &FatalError{Msg: "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)", Err: err}
	}
	if !reaching {
		return nil
	}
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &de) || errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout() && status == 0) {
		reason := "no answer"
		switch {
		case de != nil:
			reason = "unknown host " + de.Name
		case oe != nil && oe.Err != nil:
			reason = oe.Err.Error()
			if i := strings.LastIndex(reason, ": "); i >= 0 {
				reason = reason[i+2:]
			}
		}
		return &FatalError{Msg: fmt.Sprintf("cannot reach S3 at %s: %s (check --endpoint and the network)", b.where, reason), Err: err}
	}
	return nil
}

// plainHTTPAnswer reports whether err is net/http's for a TLS connection
// that a plain-HTTP server answered: no attempt can succeed.
func plainHTTPAnswer(err error) bool {
	return err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// wrongScheme is the FatalError of an endpoint whose scheme is not the
// server's: https:// to a plain-HTTP server, or, if badRequest (the first
// request's 400 or a malformed answer, which is what TLS servers answer
// plain HTTP with), http:// to a server that completes a TLS handshake.
func (b *S3) wrongScheme(err error, badRequest bool) error {
	host, isHTTPS := strings.CutPrefix(b.where, "https://")
	if isHTTPS && plainHTTPAnswer(err) {
		return &FatalError{Msg: fmt.Sprintf("the server at %s speaks plain HTTP: write http://%s", b.where, host), Err: err}
	}
	host, isHTTP := strings.CutPrefix(b.where, "http://")
	if !isHTTP || !badRequest {
		return nil
	}
	hostport := strings.TrimRight(host, "/")
	if i := strings.IndexByte(hostport, '/'); i >= 0 {
		hostport = hostport[:i]
	}
	if _, _, splitErr := net.SplitHostPort(hostport); splitErr != nil {
		hostport = net.JoinHostPort(hostport, "80")
	}
	// Only whether the server speaks TLS at all: no request is sent, so
	// its certificate does not matter.
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * time.Second}, Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec
	conn, dialErr := d.Dial("tcp", hostport)
	if dialErr != nil {
		return nil
	}
	conn.Close()
	return &FatalError{Msg: fmt.Sprintf("the server at %s uses TLS: write https://%s", b.where, host), Err: err}
}

// expectedRegion finds the region a server names in its refusal of a
// request signed for another ("... is wrong; expecting 'us-east-1'").
var expectedRegion = regexp.MustCompile(`expecting ['"]([a-z0-9-]+)['"]`)

// ErrNoRegion is NewS3's error when no region is set and none can be
// defaulted (no endpoint): a setting missing, a usage error.
var ErrNoRegion = errors.New("no region: set --region or AWS_REGION")
