package cost

import (
	"math"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

// Replaced sums the objects a run overwrites or deletes by their age, for
// the charge of a minimum storage duration: bytes by whole hours since
// upload, up to a year (older objects are past every minimum). The zero
// value is empty; it is not safe for concurrent use.
type Replaced struct {
	bytesByHour map[int64]int64
	countByHour map[int64]int64
	// Unknown counts the objects whose upload time the manifest does
	// not know; they are taken as past the minimum.
	Unknown int64
}

// maxAgeHours is the oldest age kept: a year, longer than any minimum.
const maxAgeHours = 366 * 24

// Add counts an object of size bytes uploaded at uploaded (zero: not
// known), replaced at now.
func (r *Replaced) Add(size int64, uploaded, now time.Time) {
	if uploaded.IsZero() {
		r.Unknown++
		return
	}
	hours := int64(now.Sub(uploaded) / time.Hour)
	if hours >= maxAgeHours {
		return
	}
	if r.bytesByHour == nil {
		r.bytesByHour, r.countByHour = map[int64]int64{}, map[int64]int64{}
	}
	hours = max(hours, 0)
	r.bytesByHour[hours] += size
	r.countByHour[hours]++
}

// AddChange counts the objects that applying ch overwrites or deletes, at
// now: the row it replaces (a modify's, a delete's, a metadata refresh's,
// whose copy onto itself is a new object), and a rename's old key.
func (r *Replaced) AddChange(ch manifest.Change, now time.Time) {
	if ch.Prev != nil && (ch.Op != manifest.OpTouch || ch.MetaChanged()) {
		r.addRow(*ch.Prev, now)
	}
	if ch.Op == manifest.OpRename && ch.Gone != nil {
		r.addRow(*ch.Gone, now)
	}
}

func (r *Replaced) addRow(e manifest.Entry, now time.Time) {
	var up time.Time
	if e.UploadedNs != 0 {
		up = time.Unix(0, e.UploadedNs)
	}
	r.Add(e.Stat.Size, up, now)
}

// Estimate is what a run costs at some Prices.
type Estimate struct {
	Prices   string  `json:"prices"`       // whose: Prices.Name
	Requests float64 `json:"requests_usd"` // its requests
	// EarlyDelete is the charge for the objects replaced before the
	// minimum storage duration of their class (EarlyObjects of them,
	// EarlyBytes in all).
	EarlyDelete  float64 `json:"early_delete_usd"`
	EarlyObjects int64   `json:"early_delete_objects"`
	EarlyBytes   int64   `json:"early_delete_bytes"`
	// StorageClass and MinDays are the class the objects are in and its
	// minimum storage duration (0: none).
	StorageClass string  `json:"storage_class"`
	MinDays      float64 `json:"min_days"`
	// UnknownAge counts replaced objects whose upload time is not known:
	// taken as past the minimum, not charged.
	UnknownAge int64   `json:"unknown_age_objects,omitempty"`
	Total      float64 `json:"usd"`
}

const gib = 1 << 30

// Estimate prices requests and the replaced objects.
func (p Prices) Estimate(req manifest.Requests, rep Replaced) Estimate {
	e := Estimate{Prices: p.Name, StorageClass: p.StorageClass, MinDays: p.MinDays[p.StorageClass], UnknownAge: rep.Unknown}
	for op, n := range req.ByOp {
		e.Requests += float64(n) / 1000 * p.PerThousand[p.Class(op)]
	}
	if minHours := e.MinDays * 24; minHours > 0 {
		perByteHour := p.PerGBMonth[p.StorageClass] / gib / (30 * 24)
		for hours, bytes := range rep.bytesByHour {
			// An object h whole hours old has stayed at least h
			// hours: charged for the rest, at most minHours - h.
			if left := minHours - float64(hours); left > 0 {
				e.EarlyDelete += float64(bytes) * left * perByteHour
				e.EarlyObjects += rep.countByHour[hours]
				e.EarlyBytes += bytes
			}
		}
	}
	e.Total = e.Requests + e.EarlyDelete
	// To a millionth of a cent: no float noise in the JSON.
	e.Requests, e.EarlyDelete, e.Total = round(e.Requests), round(e.EarlyDelete), round(e.Total)
	return e
}

func round(v float64) float64 { return math.Round(v*1e12) / 1e12 }
