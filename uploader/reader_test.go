package uploader_test

import (
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/readertest"
)

// The S3 client keeps the Reader contract, on each real server.
func TestS3KeepsTheReaderContract(t *testing.T) {
	uploader.OnEachTestS3(t, func(t *testing.T, s3 *uploader.S3, put func(*testing.T, string, []byte, *uploader.Object)) {
		readertest.Run(t, s3, put)
	})
}
