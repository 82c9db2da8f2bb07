package manifest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxKeyLen is S3's limit on the length of an object key, in bytes.
const MaxKeyLen = 1024

// CheckKeyLen says, for a path whose key under prefix would be over
// MaxKeyLen, how long it would be and what to do; nil if it fits.
func CheckKeyLen(prefix, path string) error {
	if n := len(Key(prefix, path)); n > MaxKeyLen {
		return fmt.Errorf("its key would be %d bytes, over S3's limit of %d: not backed up (shorten the path or the prefix)", n, MaxKeyLen)
	}
	return nil
}

// NormalizePrefix returns the key prefix in its one canonical form: no
// leading '/', and a single trailing '/' unless it is empty, so that
// "backups" and "backups/" name the same place.
func NormalizePrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// Key returns the object key for a path relative to the source: the prefix
// followed by the escaped path (see EscapePath).
func Key(prefix, path string) string { return prefix + EscapePath(path) }

// EscapePath maps a relative path to the part of a key that names it. S3
// keys are UTF-8 and control characters are trouble in listings and logs,
// while file names are arbitrary bytes. The mapping is reversible and is the
// identity for ordinary names: a backslash becomes `\\`, and a control
// character or a byte that is not part of valid UTF-8 becomes `\xHH`.
func EscapePath(p string) string {
	if !needsEscape(p) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
			i++
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
			i++
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(p[i:])
			if r == utf8.RuneError && size == 1 {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				b.WriteString(p[i : i+size])
			}
			i += size
		}
	}
	return b.String()
}

func needsEscape(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\\' || c < 0x20 || c == 0x7f {
			return true
		}
		if c >= utf8.RuneSelf {
			return !utf8.ValidString(p[i:])
		}
	}
	return false
}

// UnescapePath is the inverse of EscapePath.
func UnescapePath(k string) (string, error) {
	if !strings.Contains(k, `\`) {
		return k, nil
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] != '\\' {
			b.WriteByte(k[i])
			continue
		}
		switch {
		case i+1 < len(k) && k[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case i+3 < len(k) && k[i+1] == 'x':
			c, err := strconv.ParseUint(k[i+2:i+4], 16, 8)
			if err != nil {
				return "", fmt.Errorf("key %q: bad escape at byte %d", k, i)
			}
			b.WriteByte(byte(c))
			i += 3
		default:
			return "", fmt.Errorf("key %q: bad escape at byte %d", k, i)
		}
	}
	return b.String(), nil
}

// ErrFolderMarker is a zero-byte key ending in "/": what S3 consoles
// create to show an empty folder. It backs up no file and is ignored.
var ErrFolderMarker = errors.New("folder marker")

// PathOfKey maps a key read from the bucket (with the size the listing
// gives its object) back to the path of the file it backs up, relative to
// the source, or says why it names none. Keys are untrusted input: only
// what Key writes for a relative path without empty, "." or ".."
// components is accepted, so a key can never lead outside the folder, and
// two keys never map to one path. A folder marker is ErrFolderMarker, a
// key in the history area ErrHistoryKey.
func PathOfKey(prefix, key string, size int64) (string, error) {
	rest, ok := strings.CutPrefix(key, prefix)
	switch {
	case !ok:
		return "", fmt.Errorf("not under the prefix %q", prefix)
	case IsHistoryKey(prefix, key):
		return "", ErrHistoryKey
	case size == 0 && strings.HasSuffix(key, "/"):
		return "", ErrFolderMarker
	case rest == "":
		return "", errors.New("an empty path")
	}
	p, err := UnescapePath(rest)
	if err != nil {
		return "", errors.New("does not unescape to a path (bad \\ escape)")
	}
	if err := CheckPath(p); err != nil {
		return "", err
	}
	if EscapePath(p) != rest {
		return "", fmt.Errorf("not a key cloudkeeper writes: the path it unescapes to has the key %q", Key(prefix, p))
	}
	return p, nil
}

// CheckPath says why p is not a path relative to the source folder, one
// that cannot lead outside it: empty, absolute, with a NUL byte, or with
// an empty, "." or ".." component. It is nil for one that is.
func CheckPath(p string) error {
	switch {
	case p == "":
		return errors.New("an empty path")
	case strings.IndexByte(p, 0) >= 0:
		return errors.New("a NUL byte in the path")
	case strings.HasPrefix(p, "/"):
		return errors.New("an absolute path")
	}
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "":
			return errors.New("an empty component in the path")
		case ".", "..":
			return fmt.Errorf("a %q component in the path", c)
		}
	}
	return nil
}
