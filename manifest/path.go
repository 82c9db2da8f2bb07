package manifest

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/zeebo/blake3"
)

// DefaultPath is where the manifest of id lives unless told otherwise:
// $XDG_STATE_HOME/cloudkeeper/BUCKET-HASH.db ($XDG_STATE_HOME defaults to
// ~/.local/state), where HASH identifies (source, endpoint, bucket,
// prefix): a manifest is only valid for the exact place it describes, so
// each gets its own. The error is that of os.UserHomeDir, when
// $XDG_STATE_HOME is not set and there is no home folder.
func DefaultPath(id Identity) (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(home, ".local", "state")
	}
	sum := blake3.Sum256([]byte(id.Source + "\x00" + id.Endpoint + "\x00" + id.Bucket + "\x00" + id.Prefix))
	return filepath.Join(dir, "cloudkeeper", fmt.Sprintf("%s-%x.db", id.Bucket, sum[:8])), nil
}
