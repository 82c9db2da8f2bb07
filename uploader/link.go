package uploader

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// Symlinks kept as links (sync --links): an empty object whose
// x-amz-meta-symlink is the link's target and whose x-amz-meta-blake3 is
// the target's scanner.LinkDigest, so that the object describes itself as
// a file's does (restore, verify and a manifest rebuild need nothing else).

// MetaLink is the metadata key of a link's target, as sent after
// "x-amz-meta-" (see FormatLinkTarget).
const MetaLink = "symlink"

// FormatLinkTarget writes a link's target as a metadata value, which must
// be printable ASCII and keeps no spaces at its ends: '%', control bytes,
// bytes over 0x7e and a space at either end are percent-encoded
// ("caf%C3%A9"); everything else, inner spaces included, is as it is.
func FormatLinkTarget(target string) string {
	var b strings.Builder
	for i := 0; i < len(target); i++ {
		c := target[i]
		edge := c == ' ' && (i == 0 || i == len(target)-1)
		if c < 0x20 || c > 0x7e || c == '%' || edge {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ParseLinkTarget reads what FormatLinkTarget writes. An empty target, or
// one with a NUL byte, is no link's and an error.
func ParseLinkTarget(s string) (string, error) {
	t, err := url.PathUnescape(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("x-amz-meta-%s %q: %w", MetaLink, s, err)
	case t == "" || strings.IndexByte(t, 0) >= 0:
		return "", fmt.Errorf("x-amz-meta-%s %q: no symlink's target", MetaLink, s)
	}
	return t, nil
}

// IsLink reports whether o is a symlink's object (Mode has fs.ModeSymlink).
func (o Object) IsLink() bool { return o.Mode&fs.ModeSymlink != 0 }

// uploadLink writes the link at u.Path as an empty object carrying its
// target, read again now: a link whose target no longer hashes to u.Hash
// changed since the scan, and nothing is written.
func (b *S3) uploadLink(ctx context.Context, u Upload) (Written, error) {
	fsys := u.FS
	if fsys == nil {
		fsys = scanner.OS{Links: true}
	}
	sum, _, target, err := scanner.HashLink(fsys, u.Path)
	if errors.Is(err, scanner.ErrChanged) || err == nil && sum != u.Hash {
		return Written{}, changedError{u.Path}
	}
	if err != nil {
		return Written{}, err
	}
	u.Link, u.Size = target, 0
	return b.putObject(ctx, nil, u)
}

// linkTarget fills in o.Link, for a copy of the link object at from, from
// that object's metadata: the manifest does not keep targets, and a copy
// replaces the metadata.
func (b *S3) linkTarget(ctx context.Context, from string, o *Object) error {
	if !o.IsLink() || o.Link != "" {
		return nil
	}
	meta, err := b.Head(ctx, from)
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("copy %s to %s: %w", from, o.Key, ErrSourceMissing)
	case err != nil:
		return err
	case meta.LinkErr != nil:
		return fmt.Errorf("copy %s to %s: %w", from, o.Key, meta.LinkErr)
	}
	o.Link = meta.Link
	return nil
}
