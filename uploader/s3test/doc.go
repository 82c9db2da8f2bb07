// Package s3test runs a real S3-compatible server for tests, the
// "cloudkeeper demo" command and benchmarks, and provides a counting,
// fault-injecting reverse proxy to put in front of it.
//
// It is test support, not part of uploading (as rclone keeps the servers
// its tests start in fstest/testserver): no code of a backup run uses it,
// only the tests, the demo command and bench.
//
// The server is the Versity S3 Gateway (versitygw, pinned to v1.8.0) with its
// posix backend: buckets are folders of a root directory, objects are files,
// and their metadata is kept in extended attributes. Start launches one on a
// free 127.0.0.1 port with random credentials and returns once it answers
// signed requests; Stop kills it and removes what Start created. Find
// locates the versitygw binary, installing it into the user's cache
// directory with "go install" the first time (about three minutes), so that
// a fresh machine with a Go toolchain and the module proxy runs the tests
// rather than skipping them. Package gwtest wraps all this for tests.
//
// Start also runs a second, independent implementation, moto's S3
// emulator (Options.Server Moto: moto_server, a Python program found by
// FindMoto, in memory), so that the uploader's contract tests do not take
// a quirk of versitygw for S3. Tests skip there when it is not installed
// (ErrNoMoto). differ_test.go lists where the two answer differently.
//
// Proxy sits between a client and a gateway: it forwards requests untouched,
// counts them by S3 operation along with uploaded body bytes (Stats), and can
// answer chosen requests with an S3 error, a delay or a reset connection
// (SetFault), so that retries and resumption can be tested against a real
// server. Clients sign requests for the host they talk to and SigV4 covers
// the Host header, so the proxy forwards Host as the client sent it (its own
// address); versitygw checks signatures against the Host it receives and
// does not require it to be its own address, so this works.
//
// # Behaviour of versitygw v1.8.0
//
// These are checked by quirks_test.go; the uploader relies on them.
//
//   - User metadata keys are stored and returned lower-case, like AWS
//     (x-amz-meta-BLAKE3 comes back as Metadata["blake3"]).
//   - CopyObject of an object onto itself with MetadataDirective REPLACE
//     replaces its metadata and keeps its body; without REPLACE it fails
//     with InvalidRequest.
//   - DeleteObjects requires Content-MD5 or an x-amz-checksum-* header
//     (InvalidRequest otherwise). The SDK sends x-amz-checksum-crc32 even
//     with RequestChecksumCalculation WhenRequired, which is accepted.
//   - PutObject and UploadPart verify Content-MD5 and
//     x-amz-checksum-crc32c, failing with BadDigest and storing nothing on a
//     mismatch; a verified CRC32C is returned by HeadObject with
//     ChecksumMode ENABLED.
//   - Keys are paths, so a key cannot be both an object and a prefix of
//     other keys: putting "a/b" while "a" exists fails with 409
//     ObjectParentIsFile, putting "a" while "a/b" exists with 409
//     ExistingObjectIsDirectory. Deleting the last key under a prefix
//     removes the directory. Delete before uploading when a file becomes a
//     folder or the reverse.
//   - Without --keep-alive, which Start passes, versitygw closes the
//     connection after every response.
//   - If the root's file system has no user extended attributes (tmpfs
//     before Linux 6.6), versitygw refuses to start; Start then keeps
//     metadata in a side directory instead (versitygw --sidecar).
//
// One quirk belongs to the SDK rather than the server: aws-sdk-go-v2 adds
// "Expect: 100-continue" to uploads of 2 MiB or more, but net/http ignores
// it on the SDK's requests and sends the body at once, so a server that
// answers early and closes shows the client a connection reset, not its
// error. The proxy therefore reads a request's body before answering it with
// a fault.
package s3test
