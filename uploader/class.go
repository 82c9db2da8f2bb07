package uploader

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
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

// Thaw asks S3 to restore obj, in an archive storage class, into a copy
// readable for days days (RestoreObject, standard retrieval: hours), or,
// in an archive tier of INTELLIGENT_TIERING (a HEAD says the class), into
// its readable tier. It
// reports whether S3 had that copy already (200 OK, where a new request
// is 202 Accepted); one already asked for (409 RestoreAlreadyInProgress)
// is no error.
func (b *S3) Thaw(ctx context.Context, obj VersionRef, days int32) (already bool, err error) {
	if err := b.Check(ctx); err != nil {
		return false, err
	}
	in := &s3.RestoreObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(obj.Key), RestoreRequest: &types.RestoreRequest{Days: aws.Int32(days)}}
	head := &s3.HeadObjectInput{Bucket: in.Bucket, Key: in.Key}
	if obj.VersionID != "" {
		in.VersionId = aws.String(obj.VersionID)
		head.VersionId = in.VersionId
	}
	// INTELLIGENT_TIERING's archive tiers restore the object into the
	// tier it can be read from, for no number of days: a Days is refused.
	if h, err := b.client.HeadObject(ctx, head); err == nil && h.StorageClass == types.StorageClassIntelligentTiering {
		in.RestoreRequest.Days = nil
	}
	out, err := b.client.RestoreObject(ctx, in)
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "RestoreAlreadyInProgress" {
		return false, nil
	}
	if err != nil {
		return false, b.opError("ask for a restore of", versionedKey(obj.Key, obj.VersionID), err)
	}
	raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response)
	return ok && raw.StatusCode == http.StatusOK, nil
}
