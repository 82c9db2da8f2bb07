package manifest

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// A multipart upload killed part-way is continued by the next run if its
// file is unchanged: the upload and each part S3 confirmed are recorded
// here as they happen. A recorded upload is forgotten only once it has
// been completed or aborted, so that the bucket never keeps parts the
// manifest does not know of (and the doubt about its key, marked before
// CreateMultipartUpload, covers one whose record a kill cut off).

// PartialUpload is a multipart upload in progress, as the manifest records
// it: the file it sends and the parts S3 confirmed.
type PartialUpload struct {
	Key      string
	UploadID string
	// File is the stat of the file the upload sends (its size, mtime,
	// mode, inode and device are recorded), and Hash the scan's BLAKE3 of
	// it: an upload is continued only for the same file with the same
	// content and metadata.
	File     scanner.Stat
	Hash     scanner.Digest
	PartSize int64
	Parts    []Part // in number order
}

// Part is one part of a multipart upload that S3 confirmed.
type Part struct {
	Number int32
	Size   int64
	ETag   string // without quotes
	// MD5 is the MD5 of the bytes sent, in hex, as the client computed it
	// (the Content-MD5 S3 checked); "" in a record of a cloudkeeper
	// before it was kept. Unlike the ETag, it is the MD5 whatever the
	// encryption (with SSE-KMS or SSE-C the ETag is not).
	MD5 string
}

// Same reports whether the upload was started for the file of stat st and
// hash h, in parts of partSize: the one thing it may be continued for.
func (u PartialUpload) Same(st scanner.Stat, h scanner.Digest, partSize int64) bool {
	return u.SameFile(st) && u.Hash == h && u.PartSize == partSize
}

// SameFile reports whether st is the stat of the file u sends (size,
// mtime, mode, inode, device), before its content is known.
func (u PartialUpload) SameFile(st scanner.Stat) bool {
	f := u.File
	return f.Size == st.Size && f.MtimeNs == st.MtimeNs && f.Mode == st.Mode && f.Inode == st.Inode && f.Dev == st.Dev
}

// StartUpload records a multipart upload S3 has just created, replacing
// any record of another upload of u.Key (which must have been aborted).
func (m *DB) StartUpload(ctx context.Context, u PartialUpload) error {
	return m.inTx(ctx, "record the multipart upload of "+u.Key, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM upload_parts WHERE key = ?", u.Key); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO uploads(key, upload_id, size, mtime_ns, mode, inode, dev, blake3, part_size)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, u.Key, u.UploadID, u.File.Size, u.File.MtimeNs, uint32(u.File.Mode),
			int64(u.File.Inode), int64(u.File.Dev), u.Hash[:], u.PartSize)
		return err
	})
}

// AddPart records a part S3 confirmed for the upload uploadID of key; it
// records nothing if that upload is no longer the one recorded.
func (m *DB) AddPart(ctx context.Context, key, uploadID string, p Part) error {
	return m.inTx(ctx, fmt.Sprintf("record part %d of %s", p.Number, key), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO upload_parts(key, number, size, etag, md5)
			SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM uploads WHERE key = ? AND upload_id = ?)`,
			key, p.Number, p.Size, p.ETag, p.MD5, key, uploadID)
		return err
	})
}

// ForgetUpload drops the record of the upload uploadID of key, once it has
// been completed or aborted.
func (m *DB) ForgetUpload(ctx context.Context, key, uploadID string) error {
	return m.inTx(ctx, "forget the multipart upload of "+key, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM uploads WHERE key = ? AND upload_id = ?", key, uploadID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM upload_parts WHERE key = ?", key)
		return err
	})
}

// PartialUpload returns the recorded upload of key, with its parts.
func (m *DB) PartialUpload(ctx context.Context, key string) (PartialUpload, bool, error) {
	ups, err := m.partialUploads(ctx, "WHERE key = ?", key)
	if err != nil || len(ups) == 0 {
		return PartialUpload{}, false, err
	}
	return ups[0], true, nil
}

// PartialUploads returns every recorded upload, in key order, without
// their parts.
func (m *DB) PartialUploads(ctx context.Context) ([]PartialUpload, error) {
	return m.partialUploads(ctx, "ORDER BY key")
}

func (m *DB) partialUploads(ctx context.Context, where string, args ...any) ([]PartialUpload, error) {
	rows, err := m.db.QueryContext(ctx, `SELECT key, upload_id, size, mtime_ns, mode, inode, dev, blake3, part_size FROM uploads `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer rows.Close()
	var out []PartialUpload
	for rows.Next() {
		var u PartialUpload
		var hash []byte
		var inode, dev int64
		var mode uint32
		if err := rows.Scan(&u.Key, &u.UploadID, &u.File.Size, &u.File.MtimeNs, &mode, &inode, &dev, &hash, &u.PartSize); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.path, err)
		}
		copy(u.Hash[:], hash)
		u.File.Mode, u.File.Inode, u.File.Dev = fs.FileMode(mode), uint64(inode), uint64(dev)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	rows.Close()
	if len(args) == 0 {
		return out, nil
	}
	for i := range out {
		if out[i].Parts, err = m.parts(ctx, out[i].Key); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (m *DB) parts(ctx context.Context, key string) ([]Part, error) {
	rows, err := m.db.QueryContext(ctx, "SELECT number, size, etag, md5 FROM upload_parts WHERE key = ? ORDER BY number", key)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer rows.Close()
	var out []Part
	for rows.Next() {
		var p Part
		if err := rows.Scan(&p.Number, &p.Size, &p.ETag, &p.MD5); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.path, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	return out, nil
}

// inTx runs f in a transaction committed when it returns, its error
// wrapped with what.
func (m *DB) inTx(ctx context.Context, what string, f func(*sql.Tx) error) error {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return fmt.Errorf("manifest %s: %s: %w", m.path, what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("manifest %s: commit: %w", m.path, err)
	}
	return nil
}
