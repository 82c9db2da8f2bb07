package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// The variables of the exclude lists. No flag reads them itself (urfave
// would split them on every comma, and have the command line add to them):
// excludeRules does, when the command line gives none of the flag's.
const (
	envExclude          = "CLOUDKEEPER_EXCLUDE"
	envExcludeFrom      = "CLOUDKEEPER_EXCLUDE_FROM"
	envExcludeIfPresent = "CLOUDKEEPER_EXCLUDE_IF_PRESENT"
)

// listEnvKeys are the settings read as lists by excludeRules, for the
// check of the .env file's keys.
var listEnvKeys = []string{envExclude, envExcludeFrom, envExcludeIfPresent}

// excludeFlags are the settings of what a run leaves out, sync's and
// watch's.
func excludeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.GenericFlag{Name: "exclude", Value: &listValue{glob: true}, Usage: "leave out paths matching `GLOB` (repeatable; a comma separates patterns too, \\, is a comma in one): \"*.tmp\" matches names at any depth, \"build/out\" is anchored at the source; excluded objects already in the bucket are left alone, unless --delete-excluded (env " + envExclude + ")"},
		&cli.GenericFlag{Name: "exclude-from", Value: &listValue{}, Usage: "read exclude patterns from `FILE`, one a line, as --exclude takes them; # comments and blank lines are ignored (repeatable; env " + envExcludeFrom + ")"},
		&cli.GenericFlag{Name: "exclude-if-present", Value: &listValue{}, Usage: "leave out every folder that holds an entry named `NAME`, such as .nobackup, with all it holds (repeatable; env " + envExcludeIfPresent + ")"},
		&cli.BoolFlag{Name: "exclude-caches", EnvVars: []string{"CLOUDKEEPER_EXCLUDE_CACHES"}, Usage: "leave out every folder that holds a valid " + scanner.CacheTagName + " (one that begins with \"" + scanner.CacheTagSignature + "\")"},
		&cli.BoolFlag{Name: "delete-excluded", EnvVars: []string{"CLOUDKEEPER_DELETE_EXCLUDED"}, Usage: "delete from the bucket what is excluded (backed up before, excluded now), within --max-delete; without it, excluded objects stay"},
	}
}

// excludeRules reads the exclude settings into a filter: the patterns of
// --exclude (or CLOUDKEEPER_EXCLUDE) and of every --exclude-from file (or
// CLOUDKEEPER_EXCLUDE_FROM's), the marker names and --exclude-caches.
// A file that cannot be read or a bad pattern is a usage error naming it.
func excludeRules(c *cli.Context) (*scanner.Filter, error) {
	r := scanner.Rules{
		Patterns:  listSetting(c, "exclude", envExclude, true),
		IfPresent: listSetting(c, "exclude-if-present", envExcludeIfPresent, false),
		Caches:    c.Bool("exclude-caches"),
	}
	for _, file := range listSetting(c, "exclude-from", envExcludeFrom, false) {
		patterns, err := scanner.ReadPatterns(file)
		if err != nil {
			return nil, usageError{fmt.Errorf("--exclude-from / %s: %w", envExcludeFrom, err)}
		}
		r.Patterns = append(r.Patterns, patterns...)
	}
	f, err := scanner.Compile(r)
	if err != nil {
		return nil, usageError{err}
	}
	return f, nil
}

// listSetting is a list flag's values or, when the command line gives
// none, its variable's (from the environment or the .env file), split by
// splitList.
func listSetting(c *cli.Context, flag, env string, glob bool) []string {
	if c.IsSet(flag) {
		return c.Generic(flag).(*listValue).items
	}
	if v, ok := os.LookupEnv(env); ok {
		return splitList(v, glob)
	}
	return nil
}

// listValue is a repeatable flag's values. Each value is one item, but
// --exclude's (glob), which splitList splits as urfave's list flags
// always split it, on commas.
type listValue struct {
	items []string
	glob  bool
}

func (l *listValue) Set(v string) error {
	if l.glob {
		l.items = append(l.items, splitList(v, true)...)
	} else {
		l.items = append(l.items, v)
	}
	return nil
}

func (l *listValue) String() string { return strings.Join(l.items, ",") }

// splitList splits a list setting on commas and newlines, trimming each
// item and dropping empty ones. A comma that belongs to an item is
// written \, : in a glob the backslash stays, since path.Match reads \, as
// a comma; elsewhere (a file or marker name) it is dropped.
//
// Commas, because a .env value is one line, and because no glob
// character is a comma (path.Match has no {a,b}), so a pattern needs one
// only to match a name that has one, rare in the folders people exclude;
// ':' and ';' are as common in names and a space more so. rclone splits
// its RCLONE_EXCLUDE on commas too. Newlines, for a variable set by a
// script or a double-quoted .env value ("*.tmp\nnode_modules/").
func splitList(s string, glob bool) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			out = append(out, t)
		}
		cur.Reset()
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			if glob || s[i+1] != ',' {
				cur.WriteByte(c)
			}
			i++
			cur.WriteByte(s[i])
		case c == ',' || c == '\n':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}
