package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/zeebo/blake3"
)

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
		return "/var/lib/cloudkeeper", nil
	}
	return "", err
}
