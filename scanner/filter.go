package scanner

import (
	"fmt"
	"path"
	"strings"
)

// Filter holds the --exclude patterns. A pattern without a '/' matches a
// name at any depth ("*.tmp", "node_modules"); a pattern with a '/' is
// anchored at the source root ("build/out", "/cache/**/*.bin"), where "**"
// stands for any number of folders. A trailing '/' restricts a pattern to
// folders. Excluding a folder excludes everything under it. Globs are those
// of path.Match.
//
// A Filter also leaves out the folders that hold a marker file (see
// Rules), which only the walk can see.
//
// The zero Filter excludes nothing.
type Filter struct {
	patterns  []pattern
	ifPresent []string // marker names: a folder holding one is left out
	caches    bool     // a folder with a valid CACHEDIR.TAG is left out
}

// Rules are what a Filter leaves out.
type Rules struct {
	// Patterns are the --exclude globs (see Filter).
	Patterns []string
	// IfPresent are names: a folder holding an entry of one of these
	// names (a file, usually empty, such as .nobackup) is left out, with
	// all it holds (--exclude-if-present).
	IfPresent []string
	// Caches leaves out the folders that hold a valid CACHEDIR.TAG (one
	// that begins with CacheTagSignature), as restic, borg and tar do
	// (--exclude-caches).
	Caches bool
}

type pattern struct {
	glob    string   // for name patterns
	parts   []string // for anchored patterns, split on '/'
	dirOnly bool
}

// NewFilter checks and compiles the patterns.
func NewFilter(globs []string) (*Filter, error) { return Compile(Rules{Patterns: globs}) }

// Compile checks and compiles the rules.
func Compile(r Rules) (*Filter, error) {
	f := &Filter{caches: r.Caches}
	for _, g := range r.Patterns {
		p, err := compilePattern(g)
		if err != nil {
			return nil, err
		}
		f.patterns = append(f.patterns, p)
	}
	for _, n := range r.IfPresent {
		if n == "" || n == "." || n == ".." || strings.Contains(n, "/") {
			return nil, fmt.Errorf("--exclude-if-present %q: want the name of a file, without '/'", n)
		}
		f.ifPresent = append(f.ifPresent, n)
	}
	return f, nil
}

func compilePattern(g string) (pattern, error) {
	p := pattern{}
	g0 := g
	if strings.HasSuffix(g, "/") {
		p.dirOnly = true
		g = strings.TrimRight(g, "/")
	}
	if g == "" {
		return p, fmt.Errorf("exclude pattern %q is empty", g0)
	}
	if !strings.Contains(g, "/") {
		p.glob = g
		_, err := path.Match(g, "")
		return p, wrapPattern(g0, err)
	}
	p.parts = strings.Split(strings.TrimPrefix(g, "/"), "/")
	for _, part := range p.parts {
		if _, err := path.Match(part, ""); err != nil {
			return p, wrapPattern(g0, err)
		}
	}
	return p, nil
}

func wrapPattern(g string, err error) error {
	if err != nil {
		return fmt.Errorf("exclude pattern %q: %w", g, err)
	}
	return nil
}

// Empty reports whether the filter excludes no path by its patterns
// (markers aside).
func (f *Filter) Empty() bool { return f == nil || len(f.patterns) == 0 }

// excludes reports whether the entry rel (its last component name, a folder
// if isDir) is matched by a pattern itself, ignoring its ancestors.
func (f *Filter) excludes(rel, name string, isDir bool) bool {
	if f == nil {
		return false
	}
	for _, p := range f.patterns {
		if p.dirOnly && !isDir {
			continue
		}
		if p.parts == nil {
			if ok, _ := path.Match(p.glob, name); ok {
				return true
			}
			continue
		}
		if matchParts(p.parts, strings.Split(rel, "/")) {
			return true
		}
	}
	return false
}

// Excluded reports whether the file at rel, or a folder above it, is
// excluded. The diff uses it to leave alone what the scan did not look at.
func (f *Filter) Excluded(rel string) bool { return f.excludedPath(rel, false) }

// excludedPath reports whether rel (a folder if isDir), or a folder above
// it, is excluded.
func (f *Filter) excludedPath(rel string, isDir bool) bool {
	if f.Empty() {
		return false
	}
	for i := 0; ; {
		j := strings.IndexByte(rel[i:], '/')
		if j < 0 {
			return f.excludes(rel, rel[i:], isDir)
		}
		if f.excludes(rel[:i+j], rel[i:i+j], true) {
			return true
		}
		i += j + 1
	}
}

// matchParts matches path components against pattern components, where a
// "**" component matches zero or more path components.
func matchParts(pat, parts []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for k := 0; k <= len(parts); k++ {
				if matchParts(pat[1:], parts[k:]) {
					return true
				}
			}
			return false
		}
		if len(parts) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], parts[0]); !ok {
			return false
		}
		pat, parts = pat[1:], parts[1:]
	}
	return len(parts) == 0
}
