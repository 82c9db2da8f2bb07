package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/zeebo/blake3"
)

// FindDefault is the default manifest of id that exists: DefaultPath's
// if a file is there, else the first file of that name in another state
// folder StateDir can give (a sync run by systemd with StateDirectory=
// keeps it in /var/lib/cloudkeeper; status run by hand must find it),
// else DefaultPath's, for a first run to create.
func FindDefault(id Identity) (string, error) {
	p, err := DefaultPath(id)
	if err != nil {
		return p, err
	}
	return findIn(p, stateDirs(os.Getenv, os.UserHomeDir, systemStateDir)), nil
}

// findIn is p if a file is there, else the first file of p's name in
// dirs, else p.
func findIn(p string, dirs []string) string {
	if exists(p) {
		return p
	}
	for _, dir := range dirs {
		if q := filepath.Join(dir, filepath.Base(p)); exists(q) {
			return q
		}
	}
	return p
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// stateDirs are every state folder StateDir may give, first to last.
func stateDirs(getenv func(string) string, home func() (string, error), system string) []string {
	var dirs []string
	if d, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":"); d != "" {
		dirs = append(dirs, d)
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		dirs = append(dirs, filepath.Join(d, "cloudkeeper"))
	}
	if h, err := home(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".local", "state", "cloudkeeper"))
	}
	return append(dirs, system)
}

// systemStateDir is the state folder of root without a home folder, and
// systemd's for StateDirectory=cloudkeeper.
const systemStateDir = "/var/lib/cloudkeeper"

// DefaultPath is where the manifest of id lives unless told otherwise:
// BUCKET-HASH.db in the state folder (see StateDir), where HASH identifies
// (source, endpoint, bucket, prefix): a manifest is only valid for the
// exact place it describes, so each gets its own.
func DefaultPath(id Identity) (string, error) {
	dir, err := StateDir()
	if err != nil {
		return "", err
	}
	sum := blake3.Sum256([]byte(id.Source + "\x00" + id.Endpoint + "\x00" + id.Bucket + "\x00" + id.Prefix))
	return filepath.Join(dir, fmt.Sprintf("%s-%x.db", id.Bucket, sum[:8])), nil
}

// StateDir is the folder of the default manifests, the first of:
// systemd's $STATE_DIRECTORY (a unit with StateDirectory=cloudkeeper; the
// first of its folders if it names several), $XDG_STATE_HOME/cloudkeeper,
// ~/.local/state/cloudkeeper, and, for root without a home folder (a unit
// without User= or StateDirectory=), /var/lib/cloudkeeper. The error is
// that of os.UserHomeDir for any other user without one.
func StateDir() (string, error) {
	return stateDir(os.Getenv, os.UserHomeDir, os.Geteuid())
}

func stateDir(getenv func(string) string, home func() (string, error), euid int) (string, error) {
	if d, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":"); d != "" {
		return d, nil
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "cloudkeeper"), nil
	}
	h, err := home()
	switch {
	case err == nil:
		return filepath.Join(h, ".local", "state", "cloudkeeper"), nil
	case euid == 0:
		return systemStateDir, nil
	}
	return "", err
}
