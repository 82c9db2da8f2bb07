// Package manifest knows what the bucket holds and says what differs.
//
// The manifest is a local SQLite database with one row per object that S3
// confirmed: its path relative to the source, size, BLAKE3, the stat it was
// hashed from and when. A row is written only after S3 confirmed the object,
// so the manifest never claims more than the bucket has.
//
// Diff merges the scanner's ordered stream with the manifest's rows in path
// order and yields the changes that make the bucket match the source: adds,
// modifications, server-side renames and copies (matched by content hash)
// and deletes. Memory stays bounded by the size of the change, not of the
// tree.
//
// The diff is a pipeline of stages, one file each: diff.go runs them
// (Diff.Run) and hashes; merge.go walks the scan and the rows in lock-step
// (merger); classify.go turns what the merge found into changes, in order
// (classifier); pair.go, once the whole scan is known, pairs the uploads
// left over with vanished paths or existing objects into renames and
// copies, then deletes the rest within the limit of limit.go
// (DeleteLimit).
package manifest
