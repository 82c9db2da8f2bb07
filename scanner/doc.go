// Package scanner finds what is on disk: it walks the source directory in
// parallel, emits its regular files in path order with the stat the manifest
// compares against, and hashes with BLAKE3 the files that stat says may have
// changed.
//
// Paths are relative to the source root, use '/' as separator and are ordered
// byte-wise, the order SQLite's BINARY collation gives the manifest, so the
// two streams can be merged without holding either in memory. A directory
// sorts as its name followed by '/', so that "a/x" comes after "a.txt" and
// before "a0", as it would among full paths.
package scanner
