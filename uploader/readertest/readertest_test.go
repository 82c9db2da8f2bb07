package readertest

import (
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// The fake keeps the contract the S3 client keeps, so that tests on it
// say something of the real thing.
func TestFakeKeepsTheReaderContract(t *testing.T) {
	f := NewFake()
	Run(t, f, func(t *testing.T, key string, body []byte, o *uploader.Object) {
		if o == nil {
			f.Put(key, body, NoMeta(int64(len(body))))
			return
		}
		f.Put(key, body, Meta(body, o.MtimeNs, o.Mode))
	})
}
