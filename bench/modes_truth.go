package bench

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// state is path -> size, of the bucket under a prefix or of a tree.
type state map[string]int64

func (m *modes) state(ctx context.Context, prefix string) (state, error) {
	st := state{}
	pages := s3.NewListObjectsV2Paginator(m.client, &s3.ListObjectsV2Input{Bucket: aws.String(m.bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			st[strings.TrimPrefix(aws.ToString(o.Key), prefix)] = aws.ToInt64(o.Size)
		}
	}
	return st, nil
}

func treeState(root string) state {
	st := state{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			rel, _ := filepath.Rel(root, p)
			st[filepath.ToSlash(rel)] = fi.Size()
		}
		return nil
	})
	return st
}

// consistent reports whether the bucket has exactly the tree's paths with
// their sizes (every workload here changes sizes).
func (m *modes) consistent(ctx context.Context, prefix, src string) (bool, error) {
	bucket, err := m.state(ctx, prefix)
	if err != nil {
		return false, err
	}
	tree := treeState(src)
	if len(bucket) != len(tree) {
		return false, nil
	}
	for p, size := range tree {
		if s, ok := bucket[p]; !ok || s != size {
			return false, nil
		}
	}
	return true, nil
}

// compareState counts, against the ground truth of the tree: the changed
// paths whose change the bucket does not show (missed), and the paths the
// workload did not change whose object changed (invented).
func compareState(before, after, tree state, changed map[string]bool) (missed, invented int) {
	paths := map[string]bool{}
	for _, s := range []state{before, after, tree} {
		for p := range s {
			paths[p] = true
		}
	}
	for p := range paths {
		want, inTree := tree[p]
		got, inBucket := after[p]
		ok := inTree == inBucket && want == got
		switch {
		case ok:
		case changed[p]:
			missed++
		default:
			invented++
		}
	}
	return missed, invented
}

// reportedPaths are the paths of the JSON change lines of a dry run.
func reportedPaths(stdout string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(stdout, "\n") {
		for _, field := range []string{`"path":"`, `"from":"`} {
			if i := strings.Index(l, field); i >= 0 {
				rest := l[i+len(field):]
				if j := strings.IndexByte(rest, '"'); j >= 0 {
					out[rest[:j]] = true
				}
			}
		}
	}
	return out
}

func compareReported(changed, reported map[string]bool) (missed, invented int) {
	for p := range changed {
		if !reported[p] {
			missed++
		}
	}
	for p := range reported {
		if !changed[p] {
			invented++
		}
	}
	return missed, invented
}
