package reconcile

import (
	"context"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// Versioned is what the manifest learnt of the bucket's versioning.
type Versioned struct {
	manifest.Versioning        // as found, and recorded
	Before              string // the status recorded before ("" : none)
	// Filled are the current versions that had no version id and got
	// the one a listing of versions shows; Listed the versions listed
	// for it (none when nothing lacked an id).
	Filled, Listed int64
}

// CheckVersioning asks the bucket's versioning (one GetBucketVersioning)
// and records it in db. With versioning enabled, the current versions
// that have no version id (written before the manifest recorded them)
// get theirs from a listing of the prefix's versions (one
// ListObjectVersions per 1,000), where the object is still the one
// recorded: so the next write of each keeps the old one in the history.
func CheckVersioning(ctx context.Context, db *manifest.DB, bucket uploader.Versions, prefix string, now time.Time) (Versioned, error) {
	var v Versioned
	status, err := bucket.Versioning(ctx)
	if err != nil {
		return v, err
	}
	before, ok, err := db.Versioning(ctx)
	if err != nil {
		return v, err
	}
	if ok {
		v.Before = string(before.Status)
	}
	v.Versioning = manifest.Versioning{Status: status, Checked: now}
	if err := db.SetVersioning(ctx, v.Versioning); err != nil {
		return v, err
	}
	if status != manifest.VersioningEnabled {
		return v, nil
	}
	missing, err := db.WithoutVersionIDs(ctx)
	if err != nil || missing == 0 {
		return v, err
	}
	return v, fillVersionIDs(ctx, db, bucket, prefix, &v)
}

// fillVersionIDs lists the prefix's versions and gives the current
// versions without an id the latest one's, 1,000 at a time.
func fillVersionIDs(ctx context.Context, db *manifest.DB, bucket uploader.Versions, prefix string, v *Versioned) error {
	var batch []manifest.LatestVersion
	flush := func() error {
		n, err := db.FillVersionIDs(ctx, batch)
		v.Filled += n
		batch = batch[:0]
		return err
	}
	err := bucket.ListVersions(ctx, prefix, func(o uploader.ObjectVersion) error {
		v.Listed++
		// An object written before versioning was on is S3's "null"
		// version: kept, now, when it is replaced, and read by that id.
		if !o.Latest || o.DeleteMarker {
			return nil
		}
		path, err := manifest.PathOfKey(prefix, o.Key, o.Size)
		if err != nil {
			return nil // not a path's object (a folder marker, a bad key): not in the manifest
		}
		batch = append(batch, manifest.LatestVersion{Path: path, Size: o.Size, ETag: o.ETag, VersionID: o.VersionID})
		if len(batch) == 1000 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}
