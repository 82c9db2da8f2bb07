// Package bench measures cloudkeeper: synthetic trees, the workloads applied
// to them, and the scenarios that compare it with the reference tools.
//
// Three benchmarks, each against a local S3 gateway behind a counting proxy:
// Scale (scale*.go: a no-change run, hashing, uploads, small changes, a
// folder move, one large file, against find, b3sum and rclone), Modes
// (modes*.go: scanning against watching, over the workloads of
// modes_workload.go) and Wan (wan*.go: the same syncs with a latency added
// to every request, against rclone, aws s3 sync and s5cmd). All run the
// cloudkeeper binary and time it with Measure.
package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// TreeSpec describes a synthetic source tree.
type TreeSpec struct {
	Files   int // number of regular files
	PerDir  int // files per folder (default 100)
	FanOut  int // subfolders per folder (default 10)
	MinSize int // smallest file (default 0)
	MaxSize int // largest file (default 4096)
	Seed    uint64
}

func (s *TreeSpec) applyDefaults() {
	if s.PerDir <= 0 {
		s.PerDir = 100
	}
	if s.FanOut <= 0 {
		s.FanOut = 10
	}
	if s.MaxSize <= 0 {
		s.MaxSize = 4096
	}
}

// MakeTree writes the tree under root, which must not exist or be empty:
// folders d0000/d0001/..., FanOut subfolders each and PerDir files each,
// filled breadth first until Files files exist, with pseudo-random
// contents of sizes in [MinSize, MaxSize]. It returns the total size.
func MakeTree(root string, spec TreeSpec) (int64, error) {
	spec.applyDefaults()
	r := rand.New(rand.NewPCG(spec.Seed, 0x5eed))
	buf := make([]byte, spec.MaxSize)
	var total int64
	queue := []string{root}
	written := 0
	for n := 0; written < spec.Files; n++ {
		dir := queue[0]
		queue = queue[1:]
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return total, err
		}
		for i := 0; i < spec.PerDir && written < spec.Files; i++ {
			size := spec.MinSize + r.IntN(spec.MaxSize-spec.MinSize+1)
			for j := 0; j < size; j += 8 {
				v := r.Uint64()
				for k := 0; k < 8 && j+k < size; k++ {
					buf[j+k] = byte(v >> (8 * k))
				}
			}
			p := filepath.Join(dir, fmt.Sprintf("f%05d.dat", i))
			if err := os.WriteFile(p, buf[:size], 0o644); err != nil {
				return total, err
			}
			total += int64(size)
			written++
		}
		for i := range spec.FanOut {
			queue = append(queue, filepath.Join(dir, fmt.Sprintf("d%04d", i)))
		}
	}
	return total, nil
}
