package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"
)

const (
	prefetchLandmark   = ".prefetch.landmark"
	noPrefetchLandmark = ".no.prefetch.landmark"
	tocTarName         = "stargz.index.json"
	xattrPrefix        = "SCHILY.xattr."
)

// srcEntry is one entry of a source layer as the reference's Build keeps it.
type srcEntry struct {
	hdr   *tar.Header
	clean string
	data  []byte // regular files only
}

// srcLayer is a source tar after the reference's input rules: the last copy of a name
// wins (and takes the position of that last copy), landmarks and stargz.index.json
// are dropped.
type srcLayer struct {
	order  []*srcEntry
	byName map[string]*srcEntry
}

func cleanEntryName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func dropped(clean string) bool {
	return clean == prefetchLandmark || clean == noPrefetchLandmark || clean == tocTarName
}

// openMaybeGzip returns a reader of the uncompressed tar (gzip is sniffed).
func openMaybeGzip(p string) (io.Reader, func() error, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	head, _ := br.Peek(3)
	if len(head) == 3 && head[0] == 0x1f && head[1] == 0x8b && head[2] == 8 {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return zr, f.Close, nil
	}
	return br, f.Close, nil
}

func readSource(p string) (*srcLayer, error) {
	r, closeFn, err := openMaybeGzip(p)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	l := &srcLayer{byName: map[string]*srcEntry{}}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		e := &srcEntry{hdr: h, clean: cleanEntryName(h.Name)}
		if isReg(h) {
			if e.data, err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
		if dropped(e.clean) {
			continue
		}
		if old, ok := l.byName[e.clean]; ok {
			for i, o := range l.order {
				if o == old {
					l.order = append(l.order[:i], l.order[i+1:]...)
					break
				}
			}
		}
		l.byName[e.clean] = e
		l.order = append(l.order, e)
	}
	return l, nil
}

func isReg(h *tar.Header) bool {
	return h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA
}

// tocType is the TOC "type" the reference gives a tar entry.
func tocType(h *tar.Header) string {
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		return "reg"
	case tar.TypeLink:
		return "hardlink"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeDir:
		return "dir"
	case tar.TypeChar:
		return "char"
	case tar.TypeBlock:
		return "block"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("unsupported(%q)", h.Typeflag)
}

// formatModtime is the reference's rendering of a tar mtime in the TOC.
func formatModtime(t time.Time) string {
	if t.IsZero() || t.Unix() == 0 {
		return ""
	}
	return t.UTC().Round(time.Second).Format(time.RFC3339)
}

func xattrsOf(h *tar.Header) map[string][]byte {
	m := map[string][]byte{}
	for k, v := range h.PAXRecords {
		if strings.HasPrefix(k, xattrPrefix) {
			m[k[len(xattrPrefix):]] = []byte(v)
		}
	}
	return m
}

// content follows hardlinks (by cleaned name, as the reference reader does) to the bytes.
func (l *srcLayer) content(e *srcEntry) (*srcEntry, error) {
	for depth := 0; depth < 64; depth++ {
		if e.hdr.Typeflag != tar.TypeLink {
			if !isReg(e.hdr) {
				return nil, fmt.Errorf("%q resolves to a %s, not a regular file", e.clean, tocType(e.hdr))
			}
			return e, nil
		}
		t, ok := l.byName[cleanEntryName(e.hdr.Linkname)]
		if !ok {
			return nil, fmt.Errorf("hardlink %q points to missing %q", e.clean, e.hdr.Linkname)
		}
		e = t
	}
	return nil, fmt.Errorf("hardlink loop at %q", e.clean)
}

// expectedOrder mirrors the reference's sortEntries/moveRec: the cleaned names of the
// blob's entries (landmark included) in TOC order.
func (l *srcLayer) expectedOrder(prioritized []string) ([]string, error) {
	in := newNameList(l)
	out := &nameList{index: map[string]*srcEntry{}}
	for _, p := range prioritized {
		if err := moveRec(p, in, out); err != nil {
			return nil, err
		}
	}
	var names []string
	for _, e := range out.stream {
		names = append(names, e.clean)
	}
	if len(prioritized) == 0 {
		names = append(names, noPrefetchLandmark)
	} else {
		names = append(names, prefetchLandmark)
	}
	for _, e := range in.stream {
		names = append(names, e.clean)
	}
	return names, nil
}

type nameList struct {
	index  map[string]*srcEntry
	stream []*srcEntry
}

func newNameList(l *srcLayer) *nameList {
	n := &nameList{index: map[string]*srcEntry{}}
	for _, e := range l.order {
		n.add(e)
	}
	return n
}

func (f *nameList) add(e *srcEntry) {
	f.index[e.clean] = e
	f.stream = append(f.stream, e)
}

func (f *nameList) remove(name string) {
	delete(f.index, name)
	var kept []*srcEntry
	for _, e := range f.stream {
		if e.clean != name {
			kept = append(kept, e)
		}
	}
	f.stream = kept
}

var errNotFound = errors.New("not found")

func moveRec(name string, in, out *nameList) error {
	name = cleanEntryName(name)
	if name == "" {
		if e, ok := in.index[name]; ok {
			out.add(e)
			in.remove(name)
		}
		return nil
	}
	_, okIn := in.index[name]
	_, okOut := out.index[name]
	if !okIn && !okOut {
		return fmt.Errorf("prioritized file %q: %w", name, errNotFound)
	}
	parent, _ := path.Split(strings.TrimSuffix(name, "/"))
	if err := moveRec(parent, in, out); err != nil {
		return err
	}
	if e, ok := in.index[name]; ok && e.hdr.Typeflag == tar.TypeLink {
		if err := moveRec(e.hdr.Linkname, in, out); err != nil {
			return err
		}
	}
	if e, ok := in.index[name]; ok {
		out.add(e)
		in.remove(name)
	}
	return nil
}

// expectedEntry is what a reader of the converted blob should report for one path.
type expectedEntry struct {
	Name          string            `json:"name"`
	RawName       string            `json:"rawName"`
	Type          string            `json:"type"`
	Size          int64             `json:"size"`
	Mode          int64             `json:"mode"`
	UID           int               `json:"uid"`
	GID           int               `json:"gid"`
	UserName      string            `json:"userName"`
	GroupName     string            `json:"groupName"`
	LinkName      string            `json:"linkName"`
	ModTime       string            `json:"modtime"`
	DevMajor      int64             `json:"devMajor"`
	DevMinor      int64             `json:"devMinor"`
	Xattrs        map[string][]byte `json:"xattrs"`
	Digest        string            `json:"digest,omitempty"`
	ContentSize   int64             `json:"contentSize"`
	ContentDigest string            `json:"contentDigest,omitempty"`
}

func digestOf(b []byte) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

func (l *srcLayer) expected() ([]expectedEntry, error) {
	var out []expectedEntry
	for _, e := range l.order {
		h := e.hdr
		x := expectedEntry{
			Name: e.clean, RawName: h.Name, Type: tocType(h), Mode: h.Mode, UID: h.Uid, GID: h.Gid,
			UserName: h.Uname, GroupName: h.Gname, ModTime: formatModtime(h.ModTime), Xattrs: xattrsOf(h),
		}
		switch h.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			x.LinkName = h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			x.DevMajor, x.DevMinor = h.Devmajor, h.Devminor
		}
		if isReg(h) {
			x.Size = h.Size
			x.Digest = digestOf(e.data)
		}
		if isReg(h) || h.Typeflag == tar.TypeLink {
			c, err := l.content(e)
			if err != nil {
				return nil, err
			}
			x.ContentSize = int64(len(c.data))
			x.ContentDigest = digestOf(c.data)
		}
		out = append(out, x)
	}
	return out, nil
}

func writeExpected(l *srcLayer, w io.Writer) error {
	entries, err := l.expected()
	if err != nil {
		return err
	}
	order, err := l.expectedOrder(nil)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(map[string]interface{}{"entries": entries, "order": order})
}
