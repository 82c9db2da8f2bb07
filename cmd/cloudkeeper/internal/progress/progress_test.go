package progress

import (
	"strings"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// The apply line counts changes sent to the bucket (touches are not) and
// the bytes of uploads only; an off display still counts.
func TestApplyLineCounts(t *testing.T) {
	var stderr strings.Builder
	d := Off(&stderr)
	d.Start()
	add := manifest.Change{Op: manifest.OpAdd, Entry: manifest.Entry{Stat: scanner.Stat{Size: 2048}}}
	rename := manifest.Change{Op: manifest.OpRename, Entry: manifest.Entry{Stat: scanner.Stat{Size: 4096}}}
	touch := manifest.Change{Op: manifest.OpTouch, Entry: manifest.Entry{Stat: scanner.Stat{Size: 8192}}}
	for _, ch := range []manifest.Change{add, rename, touch} {
		d.Queued(ch)
	}
	d.Applied(uploader.Result{Change: add})
	d.Applied(uploader.Result{Change: touch})
	if got, want := d.applyLine(), "apply   1/2 changes, 2.0 KiB/2.0 KiB"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	d.Scanned(scanner.Entry{Kind: scanner.KindFile})
	d.Scanned(scanner.Entry{Kind: scanner.KindSkipped})
	if d.files.Load() != 1 {
		t.Errorf("%d files scanned, want 1 (a skipped entry is not a file)", d.files.Load())
	}
	d.Stop()
	if stderr.Len() != 0 {
		t.Errorf("an off display wrote %q", stderr.String())
	}
	// A line to stderr goes straight through when nothing is drawn.
	d.Log().Write([]byte("INFO x\n"))
	if stderr.String() != "INFO x\n" {
		t.Errorf("log line: %q", stderr.String())
	}
}

// The scan line counts in words that agree with the number.
// A resumed upload's bytes the bucket held already are neither sent nor
// still to send: they count on neither side of the bytes, so that the rate
// and the ETA are those of the bytes that go out.
func TestApplyLineLeavesOutKeptBytes(t *testing.T) {
	d := Off(&strings.Builder{})
	d.Start()
	defer d.Stop()
	big := manifest.Change{Op: manifest.OpAdd, Entry: manifest.Entry{Stat: scanner.Stat{Size: 4096}}}
	small := manifest.Change{Op: manifest.OpAdd, Entry: manifest.Entry{Stat: scanner.Stat{Size: 1024}}}
	d.Queued(big)
	d.Queued(small)
	d.Applied(uploader.Result{Change: big, Bytes: 1024, Kept: 3072})
	if got, want := d.applyLine(), "apply   1/2 changes, 1.0 KiB/2.0 KiB"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestScanLineSaysOneFile(t *testing.T) {
	d := Off(&strings.Builder{})
	d.Start()
	d.Scanned(scanner.Entry{Kind: scanner.KindFile})
	d.Hashed(5)
	if got, want := d.scanLine(), "scan    1 file, 5 B hashed (1 file)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
