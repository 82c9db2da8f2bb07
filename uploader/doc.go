// Package uploader makes the bucket match the source: a bounded pool of
// workers applies the diff's changes to a Bucket (uploads, server-side
// copies, batched deletes) and records each one in the manifest's Journal
// only after S3 confirmed it.
//
// The Bucket of a dry run is S3.DryRun, which sends nothing; the apply code
// is the same for both, so a preview shows exactly what a run would do and
// cannot write by accident. S3 counts the requests it sends, by operation
// and retries included (S3.Requests); its DryRun counts those S3 would send
// for the same calls, by the same rules, so a dry run tells what the run
// will cost.
//
// S3 also reads the bucket back (Reader: List, Head, Get; EachObject on
// any Reader) for the packages verify, restore and rebuild: the objects'
// metadata (x-amz-meta-blake3, -mtime, -mode) makes the bucket describe
// itself. readertest holds the contract of Reader and a fake of it.
package uploader
