package uploader

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CheckBucketName returns an error that says why name cannot be a bucket
// name, or nil. It refuses only what no S3 server takes: fewer than 3 or
// more than 255 characters, a character other than a letter, a digit,
// '.', '-' or '_', a first character that is not a letter or digit, or
// the form of an IP address. The stricter rules of new AWS buckets (3 to
// 63 characters, lowercase, a letter or digit last, no "..", no "xn--"
// prefix...) are left to the server: buckets made in us-east-1 before
// March 2018 may break them (uppercase, underscores, up to 255
// characters), and S3-compatible servers take them too (Ceph with relaxed
// names); a name the server refuses is then one fatal line.
func CheckBucketName(name string) error {
	invalid := func(format string, a ...any) error {
		return fmt.Errorf("bucket name %q is not valid: %s", name, fmt.Sprintf(format, a...))
	}
	if n := len(name); n < 3 || n > 255 {
		return invalid("it has %d characters, a bucket name has 3 to 63 (255 for old buckets)", n)
	}
	for _, r := range name {
		if !isLetterOrDigit(r) && r != '.' && r != '-' && r != '_' {
			return invalid("%q is not allowed (lowercase letters, digits, '.' and '-')", string(r))
		}
	}
	switch {
	case !isLetterOrDigit(rune(name[0])):
		return invalid("it must start with a letter or a digit")
	case net.ParseIP(name) != nil:
		return invalid("it has the form of an IP address")
	}
	return nil
}

func isLetterOrDigit(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

// CheckEndpoint returns an error that says what is wrong with endpoint as
// the URL of an S3-compatible server, and what to write instead, or nil.
// It must be http:// or https:// and a host, with an optional port and
// path; user info is refused without showing it (credentials belong in
// the credential chain, not in a URL that is logged).
func CheckEndpoint(endpoint string) error {
	// Any '@' may be user info: a secret key can hold '/', which would
	// end the authority early, so none is looked for there, and the
	// endpoint is never shown.
	if strings.Contains(endpoint, "@") {
		return errUserInfo
	}
	if !strings.Contains(endpoint, "://") {
		return fmt.Errorf("endpoint %q has no scheme: write http://%s (or https://%[2]s if the server uses TLS)", endpoint, endpoint)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("endpoint %q is not a URL: %w", endpoint, unwrapURLError(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("endpoint %q: the scheme must be http or https", endpoint)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("endpoint %q has no host: write http://HOST:PORT", endpoint)
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(endpoint, "?#"):
		return fmt.Errorf("endpoint %q: a query or fragment has no place in an endpoint", endpoint)
	}
	return nil
}

// errUserInfo refuses an endpoint with credentials, without repeating them.
var errUserInfo = errors.New("the endpoint has a user name or password in it: give credentials as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead")

// unwrapURLError is the reason of a url.Parse error, without the URL it
// repeats.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
