package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
)

// legacyEntry is google/crfs's stargz TOCEntry: no chunkDigest, no innerOffset, and
// NumLink serialized (it had no json tag).
type legacyEntry struct {
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	Size        int64             `json:"size,omitempty"`
	ModTime3339 string            `json:"modtime,omitempty"`
	LinkName    string            `json:"linkName,omitempty"`
	Mode        int64             `json:"mode,omitempty"`
	UID         int               `json:"uid,omitempty"`
	GID         int               `json:"gid,omitempty"`
	Uname       string            `json:"userName,omitempty"`
	Gname       string            `json:"groupName,omitempty"`
	Offset      int64             `json:"offset,omitempty"`
	DevMajor    int               `json:"devMajor,omitempty"`
	DevMinor    int               `json:"devMinor,omitempty"`
	NumLink     int               // crfs: no json tag, so "NumLink": 0
	Xattrs      map[string][]byte `json:"xattrs,omitempty"`
	Digest      string            `json:"digest,omitempty"`
	ChunkOffset int64             `json:"chunkOffset,omitempty"`
	ChunkSize   int64             `json:"chunkSize,omitempty"`
}

type legacyTOC struct {
	Version int            `json:"version"`
	Entries []*legacyEntry `json:"entries"`
}

type countWriter struct {
	w io.Writer
	n int64
}

func (cw *countWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	return n, err
}

// legacyWriter is crfs's stargz.Writer: a gzip member per payload chunk, level 9.
type legacyWriter struct {
	cw    *countWriter
	gz    *gzip.Writer
	toc   legacyTOC
	names map[string]map[int]string
}

func (w *legacyWriter) Write(p []byte) (int, error) {
	if w.gz == nil {
		w.gz, _ = gzip.NewWriterLevel(w.cw, gzip.BestCompression)
	}
	return w.gz.Write(p)
}

func (w *legacyWriter) closeGz() error {
	if w.gz == nil {
		return nil
	}
	err := w.gz.Close()
	w.gz = nil
	return err
}

func (w *legacyWriter) nameIfChanged(kind string, id int, name string) string {
	if name == "" {
		return ""
	}
	m := w.names[kind]
	if m[id] == name {
		return ""
	}
	m[id] = name
	return name
}

// writeLegacy writes a crfs-style stargz blob of the source layer's entries (already
// de-duplicated, without landmarks).
func writeLegacy(src *srcLayer, out io.Writer, chunkSize int64) error {
	bw := bufio.NewWriter(out)
	w := &legacyWriter{
		cw:    &countWriter{w: bw},
		toc:   legacyTOC{Version: 1},
		names: map[string]map[int]string{"u": {}, "g": {}},
	}
	tw := tar.NewWriter(w)
	for _, s := range src.order {
		h := *s.hdr
		ent := &legacyEntry{
			Name:        h.Name,
			Type:        tocType(&h),
			Mode:        h.Mode,
			UID:         h.Uid,
			GID:         h.Gid,
			Uname:       w.nameIfChanged("u", h.Uid, h.Uname),
			Gname:       w.nameIfChanged("g", h.Gid, h.Gname),
			ModTime3339: formatModtime(h.ModTime),
			Xattrs:      xattrsOf(&h),
		}
		switch h.Typeflag {
		case tar.TypeLink, tar.TypeSymlink:
			ent.LinkName = h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			ent.DevMajor, ent.DevMinor = int(h.Devmajor), int(h.Devminor)
		}
		if err := tw.WriteHeader(&h); err != nil {
			return err
		}
		if isReg(&h) {
			ent.Size = h.Size
			ent.Digest = digestOf(s.data)
		}
		if !isReg(&h) || h.Size == 0 {
			w.toc.Entries = append(w.toc.Entries, ent)
		}
		if isReg(&h) && h.Size > 0 {
			r := bytes.NewReader(s.data)
			var written int64
			for written < h.Size {
				if err := w.closeGz(); err != nil {
					return err
				}
				n := chunkSize
				if remain := h.Size - written; remain < n {
					n = remain
				} else {
					ent.ChunkSize = n
				}
				ent.Offset = w.cw.n
				ent.ChunkOffset = written
				if _, err := io.CopyN(tw, r, n); err != nil {
					return err
				}
				w.toc.Entries = append(w.toc.Entries, ent)
				written += n
				ent = &legacyEntry{Name: h.Name, Type: "chunk"}
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err := w.closeGz(); err != nil {
		return err
	}
	tocJSON, err := json.MarshalIndent(w.toc, "", "\t")
	if err != nil {
		return err
	}
	tocOff := w.cw.n
	w.gz, _ = gzip.NewWriterLevel(w.cw, gzip.BestCompression)
	w.gz.Extra = []byte("stargz.toc")
	ttw := tar.NewWriter(w)
	if err := ttw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: tocTarName, Size: int64(len(tocJSON))}); err != nil {
		return err
	}
	if _, err := ttw.Write(tocJSON); err != nil {
		return err
	}
	if err := ttw.Close(); err != nil {
		return err
	}
	if err := w.closeGz(); err != nil {
		return err
	}
	if _, err := bw.Write(legacyFooter(tocOff)); err != nil {
		return err
	}
	return bw.Flush()
}

// legacyFooter is crfs's 47-byte footer: an empty gzip member whose Extra is
// "%016xSTARGZ" (no subfield header).
func legacyFooter(tocOff int64) []byte {
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	gz.Header.Extra = []byte(fmt.Sprintf("%016xSTARGZ", tocOff))
	gz.Close()
	if buf.Len() != 47 {
		panic(fmt.Sprintf("legacy footer is %d bytes, not 47", buf.Len()))
	}
	return buf.Bytes()
}
