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
`, // 2: the runs of sync, for status, metrics and crash recovery.
	`
CREATE TABLE runs (
	id         INTEGER PRIMARY KEY,
	started_ns INTEGER NOT NULL,
	ended_ns   INTEGER,          -- NULL: running, or killed
	exit_code  INTEGER,
	adds       INTEGER NOT NULL DEFAULT 0,
	modifies   INTEGER NOT NULL DEFAULT 0,
	renames    INTEGER NOT NULL DEFAULT 0,
	copies     INTEGER NOT NULL DEFAULT 0,
	deletes    INTEGER NOT NULL DEFAULT 0,
	unchanged  INTEGER NOT NULL DEFAULT 0,
	bytes      INTEGER NOT NULL DEFAULT 0,
	errors     INTEGER NOT NULL DEFAULT 0,
	message    TEXT    NOT NULL DEFAULT ''
);
`, // 3: paths that watch saw change and has not pushed yet.
	`
CREATE TABLE dirty (
	path TEXT NOT NULL PRIMARY KEY
) WITHOUT ROWID;
`, // 4: the birth time, without which an inode match is not trusted as a
	// move (a freed inode goes to the next file created). 0: unknown, as
	// for every row recorded before.
	`
ALTER TABLE objects ADD COLUMN btime_ns INTEGER NOT NULL DEFAULT 0;
`, // 5: keys whose object may have changed without the manifest knowing:
	// marked before the request that changes them goes out, cleared
	// when S3's answer is recorded, settled by the next run otherwise.
	`
CREATE TABLE doubt (
	path      TEXT    NOT NULL PRIMARY KEY,
	multipart INTEGER NOT NULL DEFAULT 0, -- a multipart upload may have been started for it
	since_ns  INTEGER NOT NULL DEFAULT 0, -- when the last intent was marked
	settled   INTEGER NOT NULL DEFAULT 0  -- settled once, kept for requests still on their way
) WITHOUT ROWID;
`, // 6: the ETag S3 answered when it wrote each object, so that a listing
	// shows an object replaced behind cloudkeeper's back ('' : not known).
	`
ALTER TABLE objects ADD COLUMN etag TEXT NOT NULL DEFAULT '';
`, // 7: a run stopped by a signal (SIGINT, SIGTERM), told apart from one
	// that failed: status names it as the terminal did.
	`
ALTER TABLE runs ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
`, // 8: the S3 requests each run sent, by operation (a JSON object, as
	// manifest.Requests has them), and the content bytes they carried.
	`
ALTER TABLE runs ADD COLUMN requests TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN bytes_sent INTEGER NOT NULL DEFAULT 0;
`, // 9: multipart uploads in progress, so that a run killed part-way is
	// continued by the next one: the file the upload was started for and
	// each part S3 confirmed. A row goes only once its upload is
	// completed or aborted: the bucket never keeps what the manifest forgot.
	`
CREATE TABLE uploads (
	key       TEXT    NOT NULL PRIMARY KEY,
	upload_id TEXT    NOT NULL,
	size      INTEGER NOT NULL,
	mtime_ns  INTEGER NOT NULL,
	mode      INTEGER NOT NULL,
	inode     INTEGER NOT NULL,
	dev       INTEGER NOT NULL,
	blake3    BLOB    NOT NULL, -- the scan's hash of the file
	part_size INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE upload_parts (
	key    TEXT    NOT NULL,
	number INTEGER NOT NULL,
	size   INTEGER NOT NULL,
	etag   TEXT    NOT NULL, -- without quotes, as S3 answered the UploadPart
	PRIMARY KEY (key, number)
) WITHOUT ROWID;
`, // 10: the MD5 of each part's bytes as the client sent them (its
	// Content-MD5), so that a kept part read again is checked whatever
	// its ETag means (with SSE-KMS or SSE-C it is not the MD5). '': not
	// known, as for every part recorded before.
	`
ALTER TABLE upload_parts ADD COLUMN md5 TEXT NOT NULL DEFAULT '';
`,
	// 11: keys whose settle failed (S3 could not be asked): recording a
	// later answer for them does not clear their doubt, only a settle
	// does, for what it could not do (a multipart upload a killed run
	// left unrecorded is still to be listed and aborted).
	`
ALTER TABLE doubt ADD COLUMN settle_failed INTEGER NOT NULL DEFAULT 0;
`,
	// 12: history. Every object a run wrote, one row a version, kept
	// after a later write or a delete replaced it (ended_ns) where S3
	// still holds its bytes: by version_id in a bucket with versioning,
	// or as a copy at history_key. The objects of the manifest are its
	// current versions, written before history began (run 0).
	`
ALTER TABLE objects ADD COLUMN version_id TEXT NOT NULL DEFAULT '';
CREATE TABLE versions (
	id          INTEGER PRIMARY KEY,
	path        TEXT    NOT NULL,
	run         INTEGER NOT NULL DEFAULT 0, -- the run that wrote it; 0: not known
	written_ns  INTEGER NOT NULL,           -- when S3 confirmed it
	ended_ns    INTEGER,                    -- when a write or a delete replaced it; NULL: current
	ended_run   INTEGER,
	size        INTEGER NOT NULL,
	blake3      BLOB    NOT NULL,
	mtime_ns    INTEGER NOT NULL,
	mode        INTEGER NOT NULL,
	etag        TEXT    NOT NULL DEFAULT '',
	version_id  TEXT    NOT NULL DEFAULT '', -- S3's VersionId; '': none known
	history_key TEXT    NOT NULL DEFAULT ''  -- the copy that keeps it in a bucket without versioning
);
CREATE INDEX versions_by_path ON versions(path, written_ns);
CREATE UNIQUE INDEX versions_current ON versions(path) WHERE ended_ns IS NULL;
CREATE INDEX versions_by_end ON versions(ended_ns) WHERE ended_ns IS NOT NULL;
INSERT INTO versions(path, run, written_ns, size, blake3, mtime_ns, mode, etag)
	SELECT path, 0, uploaded_ns, size, blake3, mtime_ns, mode, etag FROM objects;
`,
	// 13: retention. retain_until_ns is the Object Lock retention a
	// version was written with (0: none asked): prune does not ask S3 to
	// delete it before then. pruning_ns marks a version a prune is about
	// to delete (0: none): a prune killed before it recorded S3's answer
	// leaves it marked, and the next prune deletes it whatever its --keep.
	`
ALTER TABLE versions ADD COLUMN retain_until_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE versions ADD COLUMN pruning_ns INTEGER NOT NULL DEFAULT 0;
`,
	// 14: history copies in doubt: a copy of an object into the history
	// area (a bucket without versioning) is marked here before it goes
	// out, and the mark cleared once it is recorded on its version.
	`
CREATE TABLE history_doubt (
	key      TEXT    PRIMARY KEY, -- the history key
	path     TEXT    NOT NULL,    -- the path whose object is copied
	blake3   BLOB    NOT NULL,    -- its content, as the manifest knows it
	size     INTEGER NOT NULL,    -- its size: a large one may be copied in parts
	since_ns INTEGER NOT NULL
);
`,
	// 15: what the history no longer holds: each old version it forgot
	// (pruned, or replaced where S3 kept no copy of it), as the time it
	// was current, so that a restore to then says the file's version is
	// not kept instead of leaving it out without a word.
	`
CREATE TABLE history_gaps (
	path    TEXT    NOT NULL,
	from_ns INTEGER NOT NULL,
	to_ns   INTEGER NOT NULL,
	pruned  INTEGER NOT NULL -- 1: deleted by a prune; 0: never kept
);
CREATE INDEX history_gaps_by_path ON history_gaps(path);
CREATE TRIGGER versions_forgotten BEFORE DELETE ON versions WHEN OLD.ended_ns IS NOT NULL BEGIN
	INSERT INTO history_gaps(path, from_ns, to_ns, pruned)
		VALUES (OLD.path, OLD.written_ns, OLD.ended_ns, OLD.version_id != '' OR OLD.history_key != '');
END;
`,
	// 16: a forgotten version whose time touches a gap of its path (of
	// the same kind) widens that gap instead of adding one: a plain
	// mirror forgets every version it replaces, and kept one row an
	// overwrite, for ever.
	`
DROP TRIGGER versions_forgotten;
CREATE TRIGGER versions_forgotten BEFORE DELETE ON versions WHEN OLD.ended_ns IS NOT NULL BEGIN
	UPDATE history_gaps SET from_ns = min(from_ns, OLD.written_ns), to_ns = max(to_ns, OLD.ended_ns)
		WHERE rowid = (SELECT rowid FROM history_gaps WHERE path = OLD.path AND pruned = (OLD.version_id != '' OR OLD.history_key != '')
			AND from_ns <= OLD.ended_ns AND to_ns >= OLD.written_ns LIMIT 1);
	INSERT INTO history_gaps(path, from_ns, to_ns, pruned)
		SELECT OLD.path, OLD.written_ns, OLD.ended_ns, OLD.version_id != '' OR OLD.history_key != ''
		WHERE NOT EXISTS (SELECT 1 FROM history_gaps WHERE path = OLD.path AND pruned = (OLD.version_id != '' OR OLD.history_key != '')
			AND from_ns <= OLD.written_ns AND to_ns >= OLD.ended_ns);
END;
`,
}
