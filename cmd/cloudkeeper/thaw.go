package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/restore"
)

// thawDays is how long the copy that the command restore and verify
// suggest asks for stays readable.
const thawDays = 7

// thawCommand is the AWS CLI command that asks S3 to restore obj, which
// is in an archive storage class, for thawDays days, quoted for a POSIX
// shell.
func thawCommand(t target, obj uploader.VersionRef, days int32) string {
	cmd := "aws s3api restore-object"
	if t.Endpoint != "" {
		cmd += " --endpoint-url " + shellWord(t.Endpoint)
	}
	cmd += " --bucket " + shellWord(t.Bucket) + " --key " + shellWord(obj.Key)
	if obj.VersionID != "" {
		cmd += " --version-id " + shellWord(obj.VersionID)
	}
	return cmd + fmt.Sprintf(" --restore-request Days=%d", days)
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

// maxThawDays is the most days --thaw takes.
const maxThawDays = 30000

// thawRequests are the RestoreObject requests of restore --thaw.
type thawRequests struct{ asked atomic.Int64 }

// ask is the callback of restore.Options.Archived that asks S3 to restore
// each archived object for days days, and says so, or logs the object
// with the command to ask by hand.
func (tr *thawRequests) ask(ctx context.Context, p *printer, s3 *uploader.S3, t target, days int32) func(string, uploader.VersionRef) {
	return func(path string, obj uploader.VersionRef) {
		already, err := s3.Thaw(ctx, obj, days)
		switch {
		case err != nil:
			p.log.Error("cannot restore: in an archive storage class, and S3 refused to restore it", "path", display(path), "error", err.Error(), "ask", thawCommand(t, obj, days))
			return
		case already:
			p.log.Info("cannot restore yet: S3 has a restored copy, which it did not give: run the restore again", "path", display(path))
		default:
			p.log.Info("asked S3 to restore it from its archive storage class", "path", display(path), "days", days)
		}
		tr.asked.Add(1)
	}
}

// line is the last line of a restore that met archived objects, thawing
// them for days days (0: not asked).
func (tr *thawRequests) line(res restore.Result, days int) string {
	n := human.Count(res.Archived, "object is", "objects are")
	msg := fmt.Sprintf("restore incomplete: %s in an archive storage class and must be restored by S3 first (each logged above, with the command that asks for it); %s", n, thawWait)
	if days > 0 {
		msg = fmt.Sprintf("restore incomplete: %s in an archive storage class: asked S3 to restore %s of them (--thaw %d; the others are logged above, with the command that asks for it); %s",
			n, human.Thousands(tr.asked.Load()), days, thawWait)
	}
	if other := res.Failed - res.Archived; other > 0 {
		msg += fmt.Sprintf("; and %s failed otherwise (logged above)", human.Count(other, "object", "objects"))
	}
	return msg
}
