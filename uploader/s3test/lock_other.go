//go:build !unix

package s3test

import "context"

// lockFile does not lock where flock is unavailable: concurrent first runs
// may then each install versitygw, which is wasteful but still safe, since
// every install renames a complete binary into place.
func lockFile(ctx context.Context, path string, waiting func()) (unlock func(), err error) {
	return func() {}, nil
}
