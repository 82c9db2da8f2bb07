package uploader_test

import (
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/readertest"
)

// The S3 client keeps the Reader contract, on the real gateway.
func TestS3KeepsTheReaderContract(t *testing.T) {
	s3, put := uploader.NewTestS3(t)
	readertest.Run(t, s3, put)
}
