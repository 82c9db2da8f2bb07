package uploader

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// StorageClasses are the storage classes an object can be written in
// (S3Config.StorageClass), as S3 names them.
var StorageClasses = []types.StorageClass{
	types.StorageClassStandard, types.StorageClassStandardIa, types.StorageClassOnezoneIa,
	types.StorageClassIntelligentTiering, types.StorageClassGlacierIr, types.StorageClassGlacier,
	types.StorageClassDeepArchive, types.StorageClassReducedRedundancy, types.StorageClassExpressOnezone,
	types.StorageClassOutposts,
}

// ParseStorageClass reads a storage class name, in any case ("standard_ia"
// is STANDARD_IA); "" is the bucket's default (none sent).
func ParseStorageClass(s string) (types.StorageClass, error) {
	if s == "" {
		return "", nil
	}
	for _, c := range StorageClasses {
		if strings.EqualFold(s, string(c)) {
			return c, nil
		}
	}
	names := make([]string, len(StorageClasses))
	for i, c := range StorageClasses {
		names[i] = string(c)
	}
	return "", fmt.Errorf("storage class %q: want one of %s", s, strings.Join(names, ", "))
}

// IsArchive reports whether objects of class c cannot be read or copied
// until restored (RestoreObject): GLACIER (Flexible Retrieval) and
// DEEP_ARCHIVE. GLACIER_IR is read at once.
func IsArchive(c types.StorageClass) bool {
	return c == types.StorageClassGlacier || c == types.StorageClassDeepArchive
}

// ParseSSE reads a server-side encryption: AES256 (SSE-S3) or aws:kms
// (SSE-KMS), in any case; "" is the bucket's default (none sent).
func ParseSSE(s string) (types.ServerSideEncryption, error) {
	switch {
	case s == "":
		return "", nil
	case strings.EqualFold(s, string(types.ServerSideEncryptionAes256)):
		return types.ServerSideEncryptionAes256, nil
	case strings.EqualFold(s, string(types.ServerSideEncryptionAwsKms)):
		return types.ServerSideEncryptionAwsKms, nil
	}
	return "", fmt.Errorf("server-side encryption %q: want AES256 or aws:kms", s)
}

// ErrKMSKeyWithoutKMS is an SSE-KMS key id given without aws:kms.
var ErrKMSKeyWithoutKMS = errors.New("a KMS key id is for server-side encryption aws:kms only")

// encryption are the headers every write carries: the server-side
// encryption, its KMS key, and the storage class, as S3Config sets them.
// A copy carries them too: S3 keeps neither on a copy unless asked.
type encryption struct {
	sse    types.ServerSideEncryption
	kmsKey *string // nil: none
	class  types.StorageClass
}

func newEncryption(c S3Config) encryption {
	e := encryption{sse: c.SSE, class: c.StorageClass}
	if c.SSEKMSKeyID != "" {
		e.kmsKey = aws.String(c.SSEKMSKeyID)
	}
	return e
}

// check is the error of settings S3 would refuse.
func (e encryption) check() error {
	if e.kmsKey != nil && e.sse != types.ServerSideEncryptionAwsKms {
		return ErrKMSKeyWithoutKMS
	}
	return nil
}
