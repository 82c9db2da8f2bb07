package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// WanOptions sizes the "over a real network" benchmark. Zero values take
// the defaults of the targets it checks.
type WanOptions struct {
	Dir       string          // work folder: trees (kept and reused), manifests, gateway root
	Files     int             // the small-file tree (default 3,000 files of 1-8 KiB)
	MoveFiles int             // the folder moved (default 10,000 files)
	Latencies []time.Duration // added to every request (default 0, 20 ms, 80 ms)
	// Concurrency is cloudkeeper's --concurrency; 0: auto, its default.
	Concurrency int
	// Throttle is how long the throttling scenario answers 503 SlowDown
	// to one request in five (default 10 s; negative skips it).
	Throttle time.Duration
	Binary   string // the cloudkeeper binary to measure
	Logf     func(format string, args ...any)
}

func (o *WanOptions) applyDefaults() {
	if o.Files <= 0 {
		o.Files = 3000
	}
	if o.MoveFiles <= 0 {
		o.MoveFiles = 10_000
	}
	if len(o.Latencies) == 0 {
		o.Latencies = []time.Duration{0, 20 * time.Millisecond, 80 * time.Millisecond}
	}
	if o.Throttle == 0 {
		o.Throttle = 10 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// WanCell is one measurement: a scenario at one latency.
type WanCell struct {
	Wall   time.Duration `json:"wall_ns"`
	MaxRSS int64         `json:"max_rss"`
	Ratio  float64       `json:"ratio"` // to the same scenario at the first latency
}

// WanRow is a scenario with one cell per latency (nil: not run).
type WanRow struct {
	Scenario string     `json:"scenario"`
	Cells    []*WanCell `json:"cells"`
}

// WanReport is what the benchmark found, with where it ran.
type WanReport struct {
	Machine   string          `json:"machine"`
	Server    string          `json:"server"`
	Latencies []time.Duration `json:"latencies_ns"`
	Rows      []*WanRow       `json:"rows"`
	Notes     []string        `json:"notes"`
}

type wan struct {
	*scale
	o   WanOptions
	rep *WanReport
}

// Wan runs each scenario of the "over a real network" targets at each
// latency, added to every request by the proxy in front of a local Versity
// S3 Gateway: the initial sync of small files, the move of a folder
// (server-side copies), a run with 1% of the files modified, and the same
// initial sync with the reference tools that are installed (rclone, aws s3
// sync, s5cmd), each with its defaults. Then, unless skipped, the initial
// sync at the last latency while the server throttles.
func Wan(ctx context.Context, o WanOptions) (*WanReport, error) {
	o.applyDefaults()
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, o.Dir, "wan", o.Logf)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	w := &wan{o: o, rep: &WanReport{
		Machine: Machine(), Latencies: o.Latencies,
		Server: "Versity S3 Gateway " + s3test.Version + " (posix backend) on the same machine, through a proxy that adds the latency to every request",
	}}
	w.scale = &scale{o: ScaleOptions{Dir: o.Dir, Binary: o.Binary, Concurrency: o.Concurrency, Logf: o.Logf},
		gw: srv.gw, proxy: srv.proxy, bucket: srv.bucket, rep: &Report{}}
	w.rclone, _ = exec.LookPath("rclone")
	small, err := w.tree("wan-small", TreeSpec{Files: o.Files, MinSize: 1 << 10, MaxSize: 8 << 10, Seed: 3})
	if err != nil {
		return w.rep, err
	}
	move, err := w.tree("wan-move/a", TreeSpec{Files: o.MoveFiles, MaxSize: 1 << 10, Seed: 4})
	if err != nil {
		return w.rep, err
	}
	for i, lat := range o.Latencies {
		if err := w.latency(ctx, i, lat, small, filepath.Dir(move)); err != nil {
			return w.rep, err
		}
	}
	w.proxy.SetDelay(0)
	if o.Throttle > 0 {
		return w.rep, w.throttled(ctx, small)
	}
	return w.rep, nil
}

// latency runs every scenario with lat added to each request.
func (w *wan) latency(ctx context.Context, i int, lat time.Duration, small, moveRoot string) error {
	tag := fmt.Sprintf("ms%d", lat.Milliseconds())
	w.o.Logf("latency %v", lat)
	w.proxy.SetDelay(lat)
	m := filepath.Join(w.o.Dir, "wan-"+tag+".db")
	os.Remove(m)
	r, err := Measure(ctx, w.sync(small, "ck-"+tag+"/", m))
	if err != nil {
		return err
	}
	w.put("cloudkeeper, initial", i, r)
	if err := w.move(ctx, i, lat, moveRoot, tag); err != nil {
		return err
	}
	if err := modifyPercent(small, 1, tag); err != nil {
		return err
	}
	if r, err = Measure(ctx, w.sync(small, "ck-"+tag+"/", m)); err != nil {
		return err
	}
	w.put("cloudkeeper, 1% modified", i, r)
	return w.references(ctx, i, small, tag)
}

// move syncs the move tree without latency (setup), then times the sync
// after its folder is renamed: one CopyObject per file, and the deletes.
func (w *wan) move(ctx context.Context, i int, lat time.Duration, root, tag string) error {
	m := filepath.Join(w.o.Dir, "wan-move-"+tag+".db")
	os.Remove(m)
	w.proxy.SetDelay(0)
	if _, err := Measure(ctx, w.sync(root, "mv-"+tag+"/", m)); err != nil {
		return err
	}
	from, to := filepath.Join(root, "a"), filepath.Join(root, "b")
	if _, err := os.Stat(from); err != nil {
		from, to = to, from // the last run moved it
	}
	if err := os.Rename(from, to); err != nil {
		return err
	}
	w.proxy.SetDelay(lat)
	r, err := Measure(ctx, w.sync(root, "mv-"+tag+"/", m))
	if err != nil {
		return err
	}
	w.put(fmt.Sprintf("cloudkeeper, folder move (%d files)", w.o.MoveFiles), i, r)
	return nil
}

// throttled is the initial sync at the last latency while the proxy
// answers 503 SlowDown to one request in five for the first o.Throttle: it
// must complete; the requests sent in that window are counted.
func (w *wan) throttled(ctx context.Context, small string) error {
	lat := w.o.Latencies[len(w.o.Latencies)-1]
	w.proxy.SetDelay(lat)
	defer w.proxy.SetDelay(0)
	var seen, refused, inWindow atomic.Int64
	var end time.Time // set just before the run
	w.proxy.SetFault(func(*http.Request) *s3test.Fault {
		if time.Now().After(end) {
			return nil
		}
		inWindow.Add(1)
		if seen.Add(1)%5 == 0 {
			refused.Add(1)
			return &s3test.Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown"}
		}
		return nil
	})
	defer w.proxy.SetFault(nil)
	m := filepath.Join(w.o.Dir, "wan-throttled.db")
	os.Remove(m)
	end = time.Now().Add(w.o.Throttle)
	r, err := Measure(ctx, w.sync(small, "throttled/", m))
	if err != nil {
		return fmt.Errorf("initial sync under SlowDown: %w", err)
	}
	w.note("throttled: the initial sync at %v with 503 SlowDown answered to 1 request in 5 for its first %v took %s; it sent %d requests in that window, %d of them refused",
		lat, w.o.Throttle, secs(r.Wall), inWindow.Load(), refused.Load())
	return nil
}

// put records r as scenario's cell at latency i.
func (w *wan) put(scenario string, i int, r Run) {
	var row *WanRow
	for _, x := range w.rep.Rows {
		if x.Scenario == scenario {
			row = x
		}
	}
	if row == nil {
		row = &WanRow{Scenario: scenario, Cells: make([]*WanCell, len(w.o.Latencies))}
		w.rep.Rows = append(w.rep.Rows, row)
	}
	c := &WanCell{Wall: r.Wall, MaxRSS: r.MaxRSS}
	if base := row.Cells[0]; base != nil {
		c.Ratio = ratio(r.Wall, base.Wall)
	} else if i == 0 {
		c.Ratio = 1
	}
	row.Cells[i] = c
	w.o.Logf("%s at %v: %s, peak RSS %s", scenario, w.o.Latencies[i], secs(r.Wall), mib(r.MaxRSS))
}

func (w *wan) note(format string, args ...any) {
	w.rep.Notes = append(w.rep.Notes, fmt.Sprintf(format, args...))
}

// modifyPercent rewrites pct% of the files under root (every 100/pct-th in
// walk order), with content that tag makes new.
func modifyPercent(root string, pct int, tag string) error {
	n := 0
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		if n%(100/pct) != 0 {
			return nil
		}
		return os.WriteFile(p, []byte("modified "+tag+" "+strconv.Itoa(n)+"\n"), 0o644)
	})
}
