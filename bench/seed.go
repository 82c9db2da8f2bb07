package bench

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// SeedManifest records every file under root in db as if a sync had
// uploaded it, without any S3 request: a quick way to put a large tree in
// the state that a no-change run starts from. The bucket stays empty; a
// no-change run never asks it anything, which the benchmark checks.
func SeedManifest(ctx context.Context, db *manifest.DB, root string) error {
	w := db.Writer()
	var commitErr atomic.Pointer[error]
	committed := func(err error) {
		if err != nil {
			commitErr.CompareAndSwap(nil, &err)
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	paths := make(chan string, 1024)
	g.Go(func() error {
		defer close(paths)
		return scanner.Walk(ctx, scanner.OS{}, root, scanner.WalkOptions{}, func(e scanner.Entry) error {
			if e.Kind != scanner.KindFile {
				return nil
			}
			select {
			case paths <- e.Path:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	for range 8 {
		g.Go(func() error {
			for rel := range paths {
				at := time.Now().UnixNano()
				d, st, err := scanner.HashFile(scanner.OS{}, root+"/"+rel)
				if err != nil {
					return err
				}
				if err := w.Put(ctx, manifest.Entry{Path: rel, Hash: d, Stat: st, HashedNs: at}, committed); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := g.Wait()
	w.Close()
	if err != nil {
		return err
	}
	if p := commitErr.Load(); p != nil {
		return *p
	}
	return nil
}
