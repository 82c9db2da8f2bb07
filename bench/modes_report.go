package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Markdown writes the comparison as a table, one row per (workload, mode).
func (r *ModesReport) Markdown(w io.Writer) {
	fmt.Fprintf(w, "Machine: %s  \nSetup: %s\n\n", r.Machine, r.Setup)
	fmt.Fprintln(w, "| workload | mode | missed | invented | until consistent (s) | CPU (s) | peak RSS | inotify watches | S3 requests | uploaded |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, x := range r.Results {
		wall := fmt.Sprintf("%.2f", x.WallS)
		if x.Missed > 0 || x.Invented > 0 {
			wall = fmt.Sprintf("never (gave up at %.0f)", x.WallS)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %.2f | %s | %d | %d | %s |\n", x.Workload, x.Mode, x.Missed, x.Invented,
			wall, x.CPUS, mib(x.PeakRSSBytes), x.Watches, x.S3Requests, mib(x.BytesUploaded))
	}
}

// SVG writes a chart a reader understands at a glance: for each workload, a
// bar per mode of the time until the bucket was consistent (log scale),
// and under it the changes each mode missed in red.
func (r *ModesReport) SVG(w io.Writer) {
	var workloads, modes []string
	seen := map[string]bool{}
	for _, x := range r.Results {
		if !seen["w"+x.Workload] {
			seen["w"+x.Workload] = true
			workloads = append(workloads, x.Workload)
		}
		if !seen["m"+x.Mode] {
			seen["m"+x.Mode] = true
			modes = append(modes, x.Mode)
		}
	}
	colors := map[string]string{"scan": "#4C78A8", "events": "#F58518", "hybrid": "#54A24B"}
	const (
		left, top, chartH = 70.0, 60.0, 280.0
		barW, gap         = 26.0, 34.0
	)
	groupW := float64(len(modes))*barW + gap
	width := left + float64(len(workloads))*groupW + 20
	height := top + chartH + 110
	maxWall := 0.01
	for _, x := range r.Results {
		maxWall = math.Max(maxWall, x.WallS)
	}
	// Log scale from 0.01 s to the next power of ten above the slowest.
	lo, hi := -2.0, math.Ceil(math.Log10(maxWall))
	if hi <= lo {
		hi = lo + 1
	}
	y := func(s float64) float64 {
		v := math.Log10(math.Max(s, 0.01))
		return top + chartH - (v-lo)/(hi-lo)*chartH
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	b.WriteString("<defs>")
	for _, mode := range modes {
		fmt.Fprintf(&b, `<pattern id="never-%s" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">`+
			`<rect width="8" height="8" fill="%s" opacity="0.35"/><line x1="0" y1="0" x2="0" y2="8" stroke="#C00" stroke-width="3"/></pattern>`, mode, colors[mode])
	}
	b.WriteString("</defs>\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">Time until the bucket matches the tree (log scale); red: changes missed</text>`+"\n", left)
	fmt.Fprintf(&b, `<text x="%.0f" y="40" fill="#555">%s</text>`+"\n", left, html.EscapeString(truncate(r.Machine, 110)))
	for e := lo; e <= hi; e++ {
		v := math.Pow(10, e)
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, width-20, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end" fill="#555">%s s</text>`+"\n", left-6, y(v)+4, trimFloat(v))
	}
	for i, wl := range workloads {
		x0 := left + float64(i)*groupW + gap/2
		for j, mode := range modes {
			for _, x := range r.Results {
				if x.Workload != wl || x.Mode != mode {
					continue
				}
				bx := x0 + float64(j)*barW
				fill := colors[mode]
				if x.Missed > 0 || x.Invented > 0 {
					// Never consistent: the bar stops where the bench
					// stopped waiting, hatched, with "never" on top.
					fill = "url(#never-" + mode + ")"
					fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#C00" font-weight="bold">never</text>`+"\n", bx+(barW-4)/2, y(x.WallS)-5)
				}
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.0f" height="%.1f" fill="%s"><title>%s / %s: %.2f s, missed %d</title></rect>`+"\n",
					bx, y(x.WallS), barW-4, top+chartH-y(x.WallS), fill, wl, mode, x.WallS, x.Missed)
				if x.Missed > 0 {
					fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#C00" font-weight="bold">%d</text>`+"\n", bx+(barW-4)/2, top+chartH+30, x.Missed)
				}
			}
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x0+float64(len(modes))*barW/2, top+chartH+15, wl)
	}
	svgLegend(&b, modes, colors, left, height)
	b.WriteString("</svg>\n")
	io.WriteString(w, b.String())
}

// svgLegend writes the chart's legend along its bottom edge: a colour per
// mode, what red and hatching mean.
func svgLegend(b *strings.Builder, modes []string, colors map[string]string, left, height float64) {
	lx := left
	for _, mode := range modes {
		fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", lx, height-40, colors[mode], lx+16, height-30, mode)
		lx += 90
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" fill="#C00">n = changes missed; hatched "never": not consistent when the bench stopped waiting</text>`+"\n", lx, height-30)
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" fill="#555">No bar: the bucket already matched when the workload ended.</text>`+"\n", left, height-10)
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%g", v)
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
