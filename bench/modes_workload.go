package bench

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// apply makes the workload's changes to the tree and returns the paths it
// changed (relative to src).
func (m *modes) apply(workload, src string) (map[string]bool, error) {
	changed := map[string]bool{}
	files := listFiles(src)
	var err error
	switch workload {
	case "idle":
		time.Sleep(3 * time.Second)
	case "trickle":
		err = trickle(src, files, changed)
	case "burst":
		err = burst(src, m.o.Burst, changed)
	case "rename":
		err = moveFolder(src, files, changed)
	case "delete":
		err = deleteFolders(src, files, changed)
	case "offline":
		err = editOffline(src, files, changed)
	case "overflow":
		err = storm(src, files, m.o.Storm, changed)
	default:
		return nil, fmt.Errorf("unknown workload %q (have %s)", workload, strings.Join(AllWorkloads, ", "))
	}
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// The workloads: each changes the tree at src, whose files are files, and
// marks in changed the paths it changed.

// trickle edits 20 files, one every 100 ms.
func trickle(src string, files []string, changed map[string]bool) error {
	for i := range 20 {
		p := files[(i*997)%len(files)]
		if err := appendTo(filepath.Join(src, p), fmt.Sprintf(" edit %d", i)); err != nil {
			return err
		}
		changed[p] = true
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// burst writes a new tree of n files into the folder burst.
func burst(src string, n int, changed map[string]bool) error {
	if _, err := MakeTree(filepath.Join(src, "burst"), TreeSpec{Files: n, MaxSize: 4096, Seed: 4}); err != nil {
		return err
	}
	for _, p := range listFiles(filepath.Join(src, "burst")) {
		changed["burst/"+p] = true
	}
	return nil
}

// moveFolder moves the folder d0000 into a new folder, moved.
func moveFolder(src string, files []string, changed map[string]bool) error {
	for _, p := range files {
		if strings.HasPrefix(p, "d0000/") {
			changed[p] = true
			changed["moved/"+p] = true
		}
	}
	if err := os.MkdirAll(filepath.Join(src, "moved"), 0o755); err != nil {
		return err
	}
	return os.Rename(filepath.Join(src, "d0000"), filepath.Join(src, "moved", "d0000"))
}

// deleteFolders deletes the folders d0001 and d0002.
func deleteFolders(src string, files []string, changed map[string]bool) error {
	for _, d := range []string{"d0001", "d0002"} {
		for _, p := range files {
			if strings.HasPrefix(p, d+"/") {
				changed[p] = true
			}
		}
		if err := os.RemoveAll(filepath.Join(src, d)); err != nil {
			return err
		}
	}
	return nil
}

// editOffline edits 50 files, writes 100 new ones and deletes up to 100:
// the changes made while no watch runs.
func editOffline(src string, files []string, changed map[string]bool) error {
	for i := range 50 {
		p := files[(i*331)%len(files)]
		if err := appendTo(filepath.Join(src, p), " edited offline"); err != nil {
			return err
		}
		changed[p] = true
	}
	for i := range 100 {
		p := fmt.Sprintf("offline/new-%03d.txt", i)
		if err := writeFile(filepath.Join(src, p), fmt.Sprintf("new %d", i)); err != nil {
			return err
		}
		changed[p] = true
	}
	for i := range 100 {
		p := files[(i*577+13)%len(files)]
		if !changed[p] {
			os.Remove(filepath.Join(src, p))
			changed[p] = true
		}
	}
	return nil
}

// storm is writes appends to the files, from four goroutines, faster than
// events can be read: each file ends with one line per write.
func storm(src string, files []string, writes int, changed map[string]bool) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	per := writes / 4
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				p := files[(g*per+i)%len(files)]
				if err := appendTo(filepath.Join(src, p), "."); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				mu.Lock()
				changed[p] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func listFiles(root string) []string {
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func appendTo(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeFile(path, s string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
