package uploader

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// Object describes an object to write: its key and the metadata that lets
// the bucket describe itself (x-amz-meta-blake3, -mtime, -mode).
type Object struct {
	Key     string
	Size    int64
	Hash    scanner.Digest
	MtimeNs int64
	Mode    fs.FileMode
	// Extra is more metadata to store with it (a history copy's).
	Extra map[string]string
	// Link is, for a symlink's object (IsLink), its target, stored as
	// x-amz-meta-symlink; an Upload reads it from the link, a Copy from
	// its source object when it is not set.
	Link string
}

// Metadata keys, as sent after "x-amz-meta-".
const (
	MetaBLAKE3 = "blake3"
	MetaMtime  = "mtime" // seconds since the epoch with nanoseconds, as rclone writes it
	MetaMode   = "mode"  // Unix permission bits in octal
)

// Metadata returns the user metadata stored with o.
func (o Object) Metadata() map[string]string {
	m := map[string]string{
		MetaBLAKE3: o.Hash.String(),
		MetaMtime:  FormatMtime(o.MtimeNs),
		MetaMode:   FormatMode(o.Mode),
	}
	if o.Link != "" {
		m[MetaLink] = FormatLinkTarget(o.Link)
	}
	for k, v := range o.Extra {
		m[k] = v
	}
	return m
}

// FormatMtime writes Unix nanoseconds as decimal seconds, "1700000000.123456789".
func FormatMtime(ns int64) string {
	if ns < 0 { // a decimal number, as rclone reads it: -0.5, not -1.500000000
		return "-" + FormatMtime(-ns)
	}
	return fmt.Sprintf("%d.%09d", ns/1e9, ns%1e9)
}

// ParseMtime reads what FormatMtime writes (and rclone's float seconds,
// "-5.3" included).
func ParseMtime(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	secs, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || sec > math.MaxInt64/int64(1e9)-1 {
		return 0, fmt.Errorf("mtime %q: not seconds since the epoch", s)
	}
	frac = (frac + "000000000")[:9]
	ns, err := strconv.ParseUint(frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("mtime %q: %w", s, err)
	}
	v := sec*1e9 + int64(ns)
	if neg {
		v = -v
	}
	return v, nil
}

// FormatMode writes the permission and set-id/sticky bits in octal, "0644".
func FormatMode(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}

// ParseMode reads what FormatMode writes: octal permission bits with the
// setuid (04000), setgid (02000) and sticky (01000) bits, "0644" or
// "644". Anything else, or a value over 07777, is an error.
func ParseMode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q: not octal permission bits (0000 to 7777)", s)
	}
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

// Upload is an object to write from the local file at Path. Its bytes must
// hash to Hash: if they do not, the file changed since it was hashed and
// nothing is written.
type Upload struct {
	Object
	Path string
	// FS is what the file is read through: the one the diff hashed it
	// through, so that a symlink at Path is followed only if the scan
	// follows them (scanner.OS{FollowSymlinks: true}), and tests can
	// inject faults. nil means scanner.OS{}, which refuses a symlink.
	FS scanner.FS
	// Stat is the file's stat the hash was taken under: a multipart
	// upload recorded for the same file (size, mtime, mode, inode,
	// device) and Hash is continued.
	Stat scanner.Stat
	// Resumes, if set, records multipart uploads as they go and is asked
	// for one to continue (see S3.Upload); nil: none is recorded.
	Resumes Resumes
}

// Resumes records the multipart uploads in progress and the parts S3
// confirmed, so that an upload a kill cut off is continued by the next
// run; *manifest.DB is one.
type Resumes interface {
	// PartialUpload is the recorded upload of key, with its parts.
	PartialUpload(ctx context.Context, key string) (manifest.PartialUpload, bool, error)
	// StartUpload records an upload just created.
	StartUpload(ctx context.Context, u manifest.PartialUpload) error
	// AddPart records a part S3 confirmed.
	AddPart(ctx context.Context, key, uploadID string, p manifest.Part) error
	// ForgetUpload drops an upload completed or aborted.
	ForgetUpload(ctx context.Context, key, uploadID string) error
}

var _ Resumes = (*manifest.DB)(nil)

// KeyError is the failure of one key of a batch.
type KeyError struct {
	Key string
	Err error
}

func (e KeyError) Error() string { return fmt.Sprintf("%s: %v", e.Key, e.Err) }

// Bucket is what applying changes needs of an object store.
type Bucket interface {
	// Upload writes the local file u.Path as u.Key, with u's metadata,
	// and says what it wrote (see Written); for a link (u.IsLink), an
	// empty object with the target it reads from the link now. It returns an error wrapping
	// scanner.ErrChanged if the bytes read do not hash to u.Hash; the
	// object is then not written.
	Upload(ctx context.Context, u Upload) (Written, error)
	// Copy copies the object at from to o.Key on the server, giving it
	// o's metadata, and returns what S3 answered of it. from may equal
	// o.Key, to refresh the metadata. An error wrapping ErrSourceMissing
	// means the bucket has no object at from.
	Copy(ctx context.Context, from string, o Object) (Written, error)
	// Delete deletes up to MaxDeleteBatch keys in one request, and returns
	// the keys it could not delete.
	Delete(ctx context.Context, keys []string) ([]KeyError, error)
}

// Written is what S3 answered of an object it wrote.
type Written struct {
	ETag string // of the new object, without quotes
	// VersionID is the version the write made, in a bucket with
	// versioning on; "" without.
	VersionID string
	// Sent is the bytes of the file an Upload sent, and Kept those a
	// multipart upload a killed run left already held (the parts
	// continued, not sent again): Sent+Kept is the file's size. Both 0
	// for a copy.
	Sent, Kept int64
	// RetainUntil is the Object Lock retention the write asked for;
	// zero if none (or not known: a multipart upload continued).
	RetainUntil time.Time
}

// MaxDeleteBatch is how many keys one DeleteObjects request takes.
const MaxDeleteBatch = 1000

// MaxCopySize is the largest object a single CopyObject can copy.
const MaxCopySize = 5 << 30

// ErrCopyTooLarge is returned by Copy when it will not copy an object on
// the server (a metadata refresh of an object over the single-copy limit);
// the caller decides whether to upload instead.
var ErrCopyTooLarge = errors.New("object too large for a single server-side copy")

// ErrSourceMissing is a copy whose source object is not in the bucket: it
// was deleted behind the manifest's back, or never written.
var ErrSourceMissing = errors.New("the source object is not in the bucket")
