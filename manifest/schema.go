package manifest

// migrations[i] brings a manifest from schema version i to i+1. The
// version lives in PRAGMA user_version. Append, never edit.
var migrations = []string{
	// 1: objects and the manifest's identity.
	`
CREATE TABLE objects (
	path        TEXT    NOT NULL PRIMARY KEY, -- relative to the source, '/'-separated
	size        INTEGER NOT NULL,
	blake3      BLOB    NOT NULL,             -- 32 bytes
	mtime_ns    INTEGER NOT NULL,
	ctime_ns    INTEGER NOT NULL,
	inode       INTEGER NOT NULL,
	dev         INTEGER NOT NULL,
	mode        INTEGER NOT NULL,             -- Go fs.FileMode bits
	hashed_ns   INTEGER NOT NULL,             -- when the hash was taken (racily-clean check)
	uploaded_ns INTEGER NOT NULL              -- when S3 confirmed the object
) WITHOUT ROWID;
CREATE INDEX objects_by_blake3 ON objects(blake3);
CREATE INDEX objects_by_inode ON objects(inode, dev);
CREATE TABLE settings (
	name  TEXT NOT NULL PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
`,
}
