// Package readertest is test support for uploader.Reader, the reading of
// the bucket that restore, verify and a manifest rebuild take: Run is the
// contract every implementation keeps, run against *uploader.S3 on the
// real gateway (uploader's reader_test.go) and against Fake; Fake is a
// bucket in memory for the unit tests of those packages, where cases the
// gateway cannot produce (keys no S3 server accepts, bytes that do not
// match their metadata, a failing read) are set up directly.
//
//	f := readertest.NewFake()
//	f.Put("p/a.txt", []byte("hi"), readertest.Meta([]byte("hi"), mtimeNs, 0o644))
//	res, err := restore.Run(ctx, f, root, opts)
package readertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// Meta is the metadata cloudkeeper writes for body: its size and BLAKE3,
// mtime and mode, all valid.
func Meta(body []byte, mtimeNs int64, mode fs.FileMode) uploader.ObjectMeta {
	m := uploader.ObjectMeta{Size: int64(len(body)), Hash: scanner.Digest(blake3.Sum256(body)), MtimeNs: mtimeNs, Mode: mode}
	m.Metadata = map[string]string{uploader.MetaBLAKE3: m.Hash.String(), uploader.MetaMtime: uploader.FormatMtime(mtimeNs), uploader.MetaMode: uploader.FormatMode(mode)}
	return m
}

// NoMeta is the metadata of an object cloudkeeper did not write: its size
// only, every value missing.
func NoMeta(size int64) uploader.ObjectMeta {
	return uploader.ObjectMeta{
		Size:     size,
		HashErr:  errors.New("no x-amz-meta-" + uploader.MetaBLAKE3),
		MtimeErr: errors.New("no x-amz-meta-" + uploader.MetaMtime),
		ModeErr:  errors.New("no x-amz-meta-" + uploader.MetaMode),
	}
}

// Fake is an uploader.Reader in memory. Its fields may be set before use;
// the zero value is not ready, use NewFake.
type Fake struct {
	mu      sync.Mutex
	objects map[string]fakeObject
	// Err, if set, is asked before each Head and Get ("head" or "get")
	// and a non-nil answer is returned as that request's error.
	Err func(op, key string) error
}

type fakeObject struct {
	body []byte
	meta uploader.ObjectMeta
}

var _ uploader.Reader = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{objects: map[string]fakeObject{}} }

// Put stores body at key with meta as Head and Get return it (meta.Size
// may differ from len(body): a body shorter or longer than the object
// says). Any key is accepted, as a listing may return any.
func (f *Fake) Put(key string, body []byte, meta uploader.ObjectMeta) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[key] = fakeObject{body: slices.Clone(body), meta: meta}
}

// Delete removes key.
func (f *Fake) Delete(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects, key)
}

// List calls fn for the objects under prefix in byte order of their keys,
// with the size of their body.
func (f *Fake) List(ctx context.Context, prefix string, fn func(uploader.ObjectInfo) error) error {
	f.mu.Lock()
	var infos []uploader.ObjectInfo
	for k, o := range f.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, uploader.ObjectInfo{Key: k, Size: int64(len(o.body))})
		}
	}
	f.mu.Unlock()
	slices.SortFunc(infos, func(a, b uploader.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, o := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

func (f *Fake) object(op, key string) (fakeObject, error) {
	if f.Err != nil {
		if err := f.Err(op, key); err != nil {
			return fakeObject{}, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objects[key]
	if !ok {
		return o, fmt.Errorf("%s %s: %w", op, key, uploader.ErrNotFound)
	}
	return o, nil
}

// Head returns the metadata stored with key.
func (f *Fake) Head(ctx context.Context, key string) (uploader.ObjectMeta, error) {
	o, err := f.object("head", key)
	return o.meta, err
}

// Get returns the body and metadata stored with key.
func (f *Fake) Get(ctx context.Context, key string) (io.ReadCloser, uploader.ObjectMeta, error) {
	o, err := f.object("get", key)
	if err != nil {
		return nil, uploader.ObjectMeta{}, err
	}
	return io.NopCloser(bytes.NewReader(o.body)), o.meta, nil
}

// PutFunc stores body at key in the bucket under test, with the metadata
// cloudkeeper writes for o (o.Key and o.Size are ignored), or with none
// if o is nil.
type PutFunc func(t *testing.T, key string, body []byte, o *uploader.Object)

// Run checks that r keeps the contract of uploader.Reader, on a bucket
// that holds nothing under "contract/" but what put stores.
func Run(t *testing.T, r uploader.Reader, put PutFunc) {
	ctx := context.Background()
	bodies := map[string][]byte{
		"contract/a.txt":      []byte("a"),
		"contract/b/c":        bytes.Repeat([]byte("bc"), 1000),
		"contract/b/empty":    nil,
		"contract/z z & + =":  []byte("odd"),
		"contract-outside":    []byte("no"),
		"other/contract/a.tx": []byte("no"),
	}
	o := &uploader.Object{Hash: scanner.Digest(blake3.Sum256([]byte("a"))), MtimeNs: 1_700_000_000_000_000_042, Mode: 0o640}
	for k, b := range bodies {
		obj := *o
		obj.Hash = scanner.Digest(blake3.Sum256(b))
		put(t, k, b, &obj)
	}
	put(t, "contract/nometa", []byte("plain"), nil)

	t.Run("List gives each key under the prefix once, in order, with its size", func(t *testing.T) {
		var got []string
		err := r.List(ctx, "contract/", func(i uploader.ObjectInfo) error {
			got = append(got, i.Key)
			want := int64(len("plain"))
			if b, ok := bodies[i.Key]; ok {
				want = int64(len(b))
			}
			if i.Size != want {
				t.Errorf("%s: size %d, want %d", i.Key, i.Size, want)
			}
			return nil
		})
		want := []string{"contract/a.txt", "contract/b/c", "contract/b/empty", "contract/nometa", "contract/z z & + ="}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("listed %q, %v; want %q", got, err, want)
		}
	})
	t.Run("an error of fn ends the listing and is returned", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := r.List(ctx, "contract/", func(uploader.ObjectInfo) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("List = %v after %d calls, want stop after 1", err, n)
		}
	})
	t.Run("Head and Get return the metadata put, Get the bytes", func(t *testing.T) {
		for _, k := range []string{"contract/a.txt", "contract/b/c", "contract/b/empty"} {
			want := uploader.ObjectMeta{Size: int64(len(bodies[k])), Hash: scanner.Digest(blake3.Sum256(bodies[k])), MtimeNs: o.MtimeNs, Mode: o.Mode}
			m, err := r.Head(ctx, k)
			if err == nil && m.Metadata[uploader.MetaBLAKE3] == "" {
				t.Errorf("head %s: Metadata %v has no %s: a history copy's own metadata would not be read (uploader.HistoryOf)", k, m.Metadata, uploader.MetaBLAKE3)
			}
			m.Metadata = nil // the raw metadata, which Hash, MtimeNs and Mode are read from
			if err != nil || !reflect.DeepEqual(m, want) {
				t.Errorf("head %s: %+v, %v; want %+v", k, m, err, want)
			}
			body, m, err := r.Get(ctx, k)
			if err != nil {
				t.Fatalf("get %s: %v", k, err)
			}
			b, err := io.ReadAll(body)
			body.Close()
			m.Metadata = nil
			if err != nil || !bytes.Equal(b, bodies[k]) || !reflect.DeepEqual(m, want) {
				t.Errorf("get %s: %d bytes, %+v, %v; want %d bytes, %+v", k, len(b), m, err, len(bodies[k]), want)
			}
		}
	})
	t.Run("an object without metadata says what is missing", func(t *testing.T) {
		m, err := r.Head(ctx, "contract/nometa")
		if err != nil || m.Size != 5 || m.HashErr == nil || m.MtimeErr == nil || m.ModeErr == nil {
			t.Errorf("head: %+v, %v", m, err)
		}
	})
	t.Run("a missing key is ErrNotFound, not fatal, and names the key", func(t *testing.T) {
		_, err := r.Head(ctx, "contract/no such key")
		if !errors.Is(err, uploader.ErrNotFound) || uploader.IsFatal(err) || !strings.Contains(err.Error(), "head contract/no such key") {
			t.Errorf("head: %v", err)
		}
		_, _, err = r.Get(ctx, "contract/no such key")
		if !errors.Is(err, uploader.ErrNotFound) || uploader.IsFatal(err) || !strings.Contains(err.Error(), "get contract/no such key") {
			t.Errorf("get: %v", err)
		}
	})
}
