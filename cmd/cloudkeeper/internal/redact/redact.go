// Package redact keeps secrets off a stream: a Writer replaces the values
// of secret environment variables with their names.
package redact

import (
	"io"
	"strings"
)

// Secrets are the environment variables whose values a Writer hides. The
// access key id (AWS_ACCESS_KEY_ID, the original daemon's AWS_ACCESS_KEY)
// is not one: it is an identifier, shown in consoles and logs, and
// hiding it garbles every path that happens to contain it.
var Secrets = []string{"AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}

// MinLen is the length below which a value is not hidden. A real secret
// is long (an AWS secret access key has 40 characters, a session token
// hundreds); a value of a few characters ("test", "secret" on a test
// server) is no secret worth hiding, and replacing it wherever
// it occurs would garble paths, as "test_930.h".
const MinLen = 8

// Writer copies writes to W with the value of each of Secrets (of MinLen
// characters or more) replaced by "[redacted NAME]". Getenv is called on
// every write, so that a value set while the program runs (from a .env
// file) is hidden too. A value split between two writes is not found:
// write whole lines.
type Writer struct {
	W      io.Writer
	Getenv func(string) string
}

// Write writes p, redacted, to w.W and reports len(p) when that succeeded.
func (w *Writer) Write(p []byte) (int, error) {
	s := string(p)
	for _, k := range Secrets {
		if v := w.Getenv(k); len(v) >= MinLen {
			s = strings.ReplaceAll(s, v, "[redacted "+k+"]")
		}
	}
	if _, err := io.WriteString(w.W, s); err != nil {
		return 0, err
	}
	return len(p), nil
}
