package manifest

import (
	"path"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// pair runs once the whole scan is known: each deferred add or modify
// becomes a rename of a vanished path with the same content, a copy of an
// object that holds it, or an upload after all (or a copy of this run's
// first upload of it); then the vanished paths
// that were not renamed are deleted.
func (c *classifier) pair() error {
	byHash := map[scanner.Digest][]Entry{}
	for _, v := range c.vanished {
		if v.Stat.Size > 0 {
			byHash[v.Hash] = append(byHash[v.Hash], v)
		}
	}
	renamed := map[string]bool{}
	for _, ch := range c.deferred {
		if vs := byHash[ch.Entry.Hash]; len(vs) > 0 {
			i := sameBase(vs, ch.Path)
			gone := vs[i]
			ch.Op, ch.From, ch.Gone = OpRename, gone.Path, &gone
			byHash[ch.Entry.Hash] = append(vs[:i:i], vs[i+1:]...)
			renamed[ch.From] = true
			if err := c.send(ch); err != nil {
				return err
			}
			continue
		}
		srcs, err := c.d.DB.ByHash(c.ctx, ch.Entry.Hash, 16)
		if err != nil {
			return err
		}
		send := c.upload // the content is in no object that stays
		for _, s := range srcs {
			// An object overwritten this run no longer holds the content.
			// A link's object is no file's content, nor a file's a link's.
			if s.Path != ch.Path && !c.modified[s.Path] && s.IsLink() == ch.Entry.IsLink() {
				ch.Op, ch.From, send = OpCopy, s.Path, c.send
				break
			}
		}
		if err := send(ch); err != nil {
			return err
		}
	}
	return c.deleteRest(renamed)
}

// deleteRest sends a delete for each vanished path that was not renamed,
// unless there are more than MaxDelete allows: then it sends none and sets
// Stats.Refused.
func (c *classifier) deleteRest(renamed map[string]bool) error {
	var deletes []Entry
	for _, v := range c.vanished {
		if !renamed[v.Path] {
			deletes = append(deletes, v)
		}
	}
	if err := c.d.MaxDelete.check(int64(len(deletes)), c.total.Load()); err != nil {
		c.st.Refused = err
		return nil
	}
	for _, v := range deletes {
		if err := c.send(Change{Op: OpDelete, Path: v.Path, Entry: v, Prev: &v}); err != nil {
			return err
		}
	}
	return nil
}

// sameBase picks the vanished entry with the same file name as p, if any,
// so that moving a folder pairs each file with itself.
func sameBase(vs []Entry, p string) int {
	base := path.Base(p)
	for i, v := range vs {
		if path.Base(v.Path) == base {
			return i
		}
	}
	return 0
}
