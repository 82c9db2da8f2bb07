package scanner

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// CacheTagName is the file that marks a cache folder, and CacheTagSignature
// how a valid one begins (bford.info/cachedir): a file of that name that
// does not begin so marks nothing.
const (
	CacheTagName      = "CACHEDIR.TAG"
	CacheTagSignature = "Signature: 8a477f597d28d172789f06886806bc55"
)

// HasMarkers reports whether the filter leaves out folders by a marker
// file they hold.
func (f *Filter) HasMarkers() bool { return f != nil && (len(f.ifPresent) > 0 || f.caches) }

// markedBy says why the folder at abs is left out, "" if it is not: has
// tells whether it holds an entry of a name (from its listing, or a look
// up), and the cache tag is read through fsys.
func (f *Filter) markedBy(fsys FS, abs string, has func(name string) bool) string {
	if !f.HasMarkers() {
		return ""
	}
	for _, n := range f.ifPresent {
		if has(n) {
			return "holds " + n + " (--exclude-if-present)"
		}
	}
	if f.caches && has(CacheTagName) && validCacheTag(fsys, abs+"/"+CacheTagName) {
		return "holds a valid " + CacheTagName + " (--exclude-caches)"
	}
	return ""
}

// validCacheTag reports whether the file at p begins with the signature.
// It is opened as the scan opens files: a symlink is not followed (unless
// the scan follows them), so a link to a tag elsewhere marks nothing.
func validCacheTag(fsys FS, p string) bool {
	file, err := fsys.Open(p)
	if err != nil {
		return false
	}
	defer file.Close()
	buf := make([]byte, len(CacheTagSignature))
	_, err = io.ReadFull(file, buf)
	return err == nil && string(buf) == CacheTagSignature
}

// markerNamed reports whether name is one of the filter's marker files.
func (f *Filter) markerNamed(name string) bool {
	if f.caches && name == CacheTagName {
		return true
	}
	for _, n := range f.ifPresent {
		if n == name {
			return true
		}
	}
	return false
}

// MarkerScopes maps watch's dirty paths to scopes: a marker file made or
// removed puts its whole folder in or out of the backup, so it stands for
// that folder ("" for the source folder).
func (f *Filter) MarkerScopes(dirty []string) []string {
	if !f.HasMarkers() {
		return dirty
	}
	out := make([]string, len(dirty))
	for i, p := range dirty {
		out[i] = p
		if dir, name := path.Split(p); f.markerNamed(name) {
			out[i] = strings.TrimSuffix(dir, "/")
		}
	}
	return out
}

// excludedFolder is the entry of a folder left out by a marker.
func excludedFolder(rel, why string) Entry {
	return Entry{Path: rel, Kind: KindExcluded, Dir: true, Note: why}
}

// ReadPatterns reads an --exclude-from file: one pattern a line, as
// --exclude takes it, with leading and trailing white space removed; blank
// lines and lines starting with '#' are ignored. Each pattern is checked:
// an error names the file and the line.
func ReadPatterns(file string) ([]string, error) {
	fh, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("exclude file: %w", err)
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, err := compilePattern(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n, err)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("exclude file %s: %w", file, err)
	}
	return out, nil
}
