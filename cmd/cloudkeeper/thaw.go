package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// thawDays is how long the copy that thawCommand asks for stays readable.
const thawDays = 7

// thawCommand is the AWS CLI command that asks S3 to restore obj, which
// is in an archive storage class, for thawDays days, quoted for a POSIX
// shell.
func thawCommand(t target, obj uploader.VersionRef) string {
	cmd := "aws s3api restore-object"
	if t.Endpoint != "" {
		cmd += " --endpoint-url " + shellWord(t.Endpoint)
	}
	cmd += " --bucket " + shellWord(t.Bucket) + " --key " + shellWord(obj.Key)
	if obj.VersionID != "" {
		cmd += " --version-id " + shellWord(obj.VersionID)
	}
	return cmd + fmt.Sprintf(" --restore-request Days=%d", thawDays)
}

// thawWait says how long S3 takes to restore an object, and what then.
const thawWait = "S3 takes minutes to 12 hours for GLACIER (standard retrieval), up to 48 for DEEP_ARCHIVE; then run this again"

// shellWord is s as one word of a POSIX shell: as it is if it holds only
// characters no shell treats specially, single-quoted otherwise, and in
// bash's $'...' with escapes if it holds what is not printable.
func shellWord(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_./:+@%=,", r)))
	}) {
		return s
	}
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	q := fmt.Sprintf("%q", s) // Go's escapes, which $'...' reads as well
	return "$'" + strings.ReplaceAll(q[1:len(q)-1], "'", `\'`) + "'"
}
