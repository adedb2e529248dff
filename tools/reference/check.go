package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/containerd/stargz-snapshotter/estargz"
	digest "github.com/opencontainers/go-digest"
)

// checker collects mismatches; each becomes one output line.
type checker struct {
	problems []string
}

func (c *checker) fail(format string, args ...interface{}) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checker) eq(what, name string, got, want interface{}) {
	if !reflect.DeepEqual(got, want) {
		c.fail("%s: %s: got %s, want %s", quote(name), what, show(got), show(want))
	}
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func show(v interface{}) string {
	switch x := v.(type) {
	case string:
		return quote(x)
	case map[string][]byte:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%q=%q", k, x[k]))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return fmt.Sprintf("%v", v)
}

func cmdCheck(args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	tocDigest := fs.String("toc-digest", "", "expected TOC digest (required)")
	srcPath := fs.String("tar", "", "the source tar or tar.gz the blob was converted from (required)")
	prioritized := fs.String("prioritized", "", "prioritized list the blob was converted with (checks entry order)")
	diffID := fs.String("diff-id", "", "expected DiffID (sha256 of the uncompressed blob)")
	legacy := fs.Bool("legacy", false, "BLOB is a legacy stargz (no chunk digests, no landmark, 47-byte footer)")
	pos := parseArgs(fs, args, 1)
	if (*tocDigest == "" && !*legacy) || *srcPath == "" {
		fmt.Fprintln(os.Stderr, "estargz-ref check: -toc-digest and -tar are required")
		return 2
	}
	c := &checker{}
	sum, err := check(c, pos[0], *tocDigest, *srcPath, *prioritized, *diffID, *legacy)
	if err != nil {
		c.fail("%v", err)
	}
	if len(c.problems) > 0 {
		for _, p := range c.problems {
			fmt.Println("MISMATCH " + p)
		}
		return 1
	}
	b, _ := json.Marshal(sum)
	fmt.Println(string(b))
	return 0
}

type summary struct {
	OK       bool   `json:"ok"`
	Format   string `json:"format"`
	Entries  int    `json:"entries"`
	Files    int    `json:"files"`
	Chunks   int    `json:"chunks"`
	Bytes    int64  `json:"bytes"`
	DiffID   string `json:"diffID"`
	TOCBytes int    `json:"tocBytes"`
}

// check compares BLOB with its source tar through the reference reader. Mismatches go to
// c; a returned error means the check could not go on.
func check(c *checker, blobPath, tocDigest, srcPath, prioritizedPath, wantDiffID string, legacy bool) (*summary, error) {
	src, err := readSource(srcPath)
	if err != nil {
		return nil, fmt.Errorf("reading source: %w", err)
	}
	var prioritized []string
	if prioritizedPath != "" {
		if prioritized, err = readLines(prioritizedPath); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(blobPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	sr := io.NewSectionReader(f, 0, st.Size())

	// 1. The reference opens it and accepts the TOC digest and every chunk digest.
	r, err := estargz.Open(sr)
	if err != nil {
		return nil, fmt.Errorf("estargz.Open: %w", err)
	}
	var verifier estargz.TOCEntryVerifier
	if !legacy {
		if verifier, err = r.VerifyTOC(digest.Digest(tocDigest)); err != nil {
			return nil, fmt.Errorf("VerifyTOC: %w", err)
		}
	} else if tocDigest == "" {
		tocDigest = r.TOCDigest().String()
	}

	// 2. The raw TOC, through the reference's own footer and TOC parsers.
	tocOff, footerSize, err := estargz.OpenFooter(sr)
	if err != nil {
		return nil, fmt.Errorf("OpenFooter: %w", err)
	}
	sum := &summary{OK: true, Format: "estargz"}
	var dec estargz.Decompressor = new(estargz.GzipDecompressor)
	if footerSize != estargz.FooterSize {
		sum.Format = "stargz"
		dec = new(estargz.LegacyGzipDecompressor)
		if !legacy {
			c.fail("blob has a legacy %d-byte footer, want the eStargz %d-byte footer", footerSize, estargz.FooterSize)
		}
	} else if legacy {
		c.fail("blob has an eStargz footer, want a legacy one")
	}
	toc, rawDigest, err := dec.ParseTOC(io.NewSectionReader(sr, tocOff, st.Size()-tocOff-footerSize))
	if err != nil {
		return nil, fmt.Errorf("ParseTOC: %w", err)
	}
	if rawDigest.String() != tocDigest {
		c.fail("TOC digest %s, want %s", rawDigest, tocDigest)
	}
	if toc.Version != 1 {
		c.fail("TOC version %d, want 1", toc.Version)
	}

	// 3. Entries: metadata, order, chunk layout and digests.
	wantOrder, err := src.expectedOrder(prioritized)
	if err != nil {
		return nil, err
	}
	if legacy {
		wantOrder = wantOrder[1:] // no landmark
	}
	// The TOC is JSON: names that are not UTF-8 come back with U+FFFD for each bad byte.
	for i, n := range wantOrder {
		wantOrder[i] = jsonString(n)
	}
	byTOCName := map[string]*srcEntry{}
	for _, s := range src.order {
		byTOCName[jsonString(s.clean)] = s
	}
	var gotOrder []string
	seen := map[string]bool{}
	unames, gnames := map[int]string{}, map[int]string{}
	landmarks := 0
	lastChunkOffset := int64(-1)
	for i := 0; i < len(toc.Entries); i++ {
		e := toc.Entries[i]
		if e.Type == "chunk" {
			c.fail("TOC entry %d: chunk entry without a regular file before it", i)
			continue
		}
		name := cleanEntryName(e.Name)
		gotOrder = append(gotOrder, name)
		if seen[name] {
			c.fail("%s: twice in the TOC", quote(name))
		}
		seen[name] = true
		if e.Uname != "" {
			unames[e.UID] = e.Uname
		}
		if e.Gname != "" {
			gnames[e.GID] = e.Gname
		}
		// Chunks of this entry: the reg entry itself and the chunk entries right after it.
		chunks := []*estargz.TOCEntry{e}
		for i+1 < len(toc.Entries) && toc.Entries[i+1].Type == "chunk" {
			i++
			chunks = append(chunks, toc.Entries[i])
		}
		if e.Type == "reg" && e.Size > 0 {
			lastChunkOffset = checkChunkOffsets(c, name, chunks, lastChunkOffset, tocOff)
		} else if len(chunks) > 1 {
			c.fail("%s: %s entry followed by chunk entries", quote(name), e.Type)
		}
		if name == prefetchLandmark || name == noPrefetchLandmark {
			landmarks++
			c.eq("landmark type", name, e.Type, "reg")
			c.eq("landmark size", name, e.Size, int64(1))
			c.eq("landmark digest", name, e.Digest, digestOf([]byte{0x0f}))
			checkChunks(c, name, chunks, []byte{0x0f}, legacy)
			continue
		}
		s, ok := byTOCName[name]
		if !ok {
			c.fail("%s: in the TOC but not in the source", quote(name))
			continue
		}
		h := s.hdr
		c.eq("raw name", name, e.Name, jsonString(h.Name))
		c.eq("type", name, e.Type, tocType(h))
		c.eq("mode", name, e.Mode, h.Mode)
		c.eq("uid", name, e.UID, h.Uid)
		c.eq("gid", name, e.GID, h.Gid)
		if h.Uname != "" {
			c.eq("userName", name, unames[e.UID], jsonString(h.Uname))
		}
		if h.Gname != "" {
			c.eq("groupName", name, gnames[e.GID], jsonString(h.Gname))
		}
		c.eq("modtime", name, e.ModTime3339, formatModtime(h.ModTime))
		wantLink := ""
		if h.Typeflag == tar.TypeLink || h.Typeflag == tar.TypeSymlink {
			wantLink = jsonString(h.Linkname)
		}
		c.eq("linkName", name, e.LinkName, wantLink)
		var wantMajor, wantMinor int
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			wantMajor, wantMinor = int(h.Devmajor), int(h.Devminor)
		}
		c.eq("devMajor", name, e.DevMajor, wantMajor)
		c.eq("devMinor", name, e.DevMinor, wantMinor)
		gotX := e.Xattrs
		if gotX == nil {
			gotX = map[string][]byte{}
		}
		wantX := map[string][]byte{}
		for k, v := range xattrsOf(h) {
			wantX[jsonString(k)] = v
		}
		c.eq("xattrs", name, gotX, wantX)
		if isReg(h) {
			c.eq("size", name, e.Size, h.Size)
			c.eq("digest", name, e.Digest, digestOf(s.data))
			if e.Size > 0 {
				checkChunks(c, name, chunks, s.data, legacy)
			}
		}
	}
	c.eq("entry order", "TOC", strings.Join(gotOrder, " | "), strings.Join(wantOrder, " | "))
	if landmarks != 1 && !legacy {
		c.fail("%d landmark entries, want 1", landmarks)
	}
	for _, s := range src.order {
		if !seen[jsonString(s.clean)] {
			c.fail("%s: in the source but not in the TOC", quote(s.clean))
		}
	}
	sum.Entries = len(gotOrder)

	// 4. Contents through the reference reader: whole reads, reads across chunk boundaries,
	// and every chunk through the verifier VerifyTOC returned (as the snapshotter does).
	for _, s := range src.order {
		if !isReg(s.hdr) && s.hdr.Typeflag != tar.TypeLink {
			continue
		}
		want, err := src.content(s)
		if err != nil {
			c.fail("source: %v", err)
			continue
		}
		tocName := jsonString(s.clean)
		if _, ok := r.Lookup(tocName); !ok {
			c.fail("%s: reference Lookup fails", quote(s.clean))
			continue
		}
		fr, err := r.OpenFile(tocName)
		if err != nil {
			c.fail("%s: reference OpenFile: %v", quote(s.clean), err)
			continue
		}
		got, err := io.ReadAll(io.NewSectionReader(fr, 0, fr.Size()))
		if err != nil {
			c.fail("%s: reading through the reference: %v", quote(s.clean), err)
			continue
		}
		if !bytes.Equal(got, want.data) {
			c.fail("%s: content read through the reference differs from the source (%d bytes, want %d)", quote(s.clean), len(got), len(want.data))
			continue
		}
		if s.hdr.Typeflag == tar.TypeLink {
			continue // the target's chunks are checked under its own name
		}
		sum.Files++
		sum.Bytes += int64(len(got))
		checkReadAt(c, s.clean, fr, want.data)
		if legacy {
			continue
		}
		for off := int64(0); off < int64(len(want.data)); {
			ce, ok := r.ChunkEntryForOffset(tocName, off)
			if !ok {
				c.fail("%s: reference ChunkEntryForOffset(%d) finds no chunk", quote(s.clean), off)
				break
			}
			if ce.ChunkOffset != off || ce.ChunkSize <= 0 {
				c.fail("%s: chunk for offset %d starts at %d with size %d", quote(s.clean), off, ce.ChunkOffset, ce.ChunkSize)
				break
			}
			buf := make([]byte, ce.ChunkSize)
			if _, err := fr.ReadAt(buf, ce.ChunkOffset); err != nil && err != io.EOF {
				c.fail("%s: reading chunk at %d: %v", quote(s.clean), off, err)
				break
			}
			v, err := verifier.Verifier(ce)
			if err != nil {
				c.fail("%s: no verifier for chunk at %d: %v", quote(s.clean), off, err)
				break
			}
			v.Write(buf)
			if !v.Verified() {
				c.fail("%s: chunk at %d fails the reference verifier", quote(s.clean), off)
			}
			sum.Chunks++
			off += ce.ChunkSize
		}
	}

	// 5. The whole blob is one valid tar.gz: entries in TOC order with the source's headers
	// and contents, then the TOC entry; its sha256 is the DiffID.
	gotDiffID, tocBytes, err := checkStream(c, sr, byTOCName, gotOrder)
	if err != nil {
		c.fail("uncompressed stream: %v", err)
	}
	if got := digestOf(tocBytes); got != tocDigest {
		c.fail("stargz.index.json in the tar stream has digest %s, want %s", got, tocDigest)
	}
	sum.DiffID = gotDiffID
	sum.TOCBytes = len(tocBytes)
	if wantDiffID != "" && gotDiffID != wantDiffID {
		c.fail("DiffID %s, want %s", gotDiffID, wantDiffID)
	}
	return sum, nil
}

// checkChunkOffsets: payloads start at increasing blob offsets before the TOC.
func checkChunkOffsets(c *checker, name string, chunks []*estargz.TOCEntry, last, tocOff int64) int64 {
	for _, ch := range chunks {
		if ch.Offset <= last || ch.Offset >= tocOff {
			c.fail("%s: chunk at %d has blob offset %d (previous payload at %d, TOC at %d)", quote(name), ch.ChunkOffset, ch.Offset, last, tocOff)
		}
		if ch.Offset > last {
			last = ch.Offset
		}
	}
	return last
}

// checkChunks: the raw chunk entries tile the file and carry the right digests.
func checkChunks(c *checker, name string, chunks []*estargz.TOCEntry, data []byte, legacy bool) {
	var pos int64
	size := int64(len(data))
	for i, ch := range chunks {
		if ch.ChunkOffset != pos {
			c.fail("%s: chunk %d at file offset %d, want %d", quote(name), i, ch.ChunkOffset, pos)
			return
		}
		n := ch.ChunkSize
		if n == 0 {
			n = size - pos
		}
		if n <= 0 || pos+n > size {
			c.fail("%s: chunk %d has size %d at %d of %d", quote(name), i, ch.ChunkSize, pos, size)
			return
		}
		if i > 0 && ch.Name != "" && ch.Name != chunks[0].Name {
			c.fail("%s: chunk %d is named %q", quote(name), i, ch.Name)
		}
		if want := digestOf(data[pos : pos+n]); !legacy && ch.ChunkDigest != want {
			c.fail("%s: chunk %d chunkDigest %q, want %s", quote(name), i, ch.ChunkDigest, want)
		}
		pos += n
	}
	if pos != size {
		c.fail("%s: chunks cover %d bytes of %d", quote(name), pos, size)
	}
}

// checkReadAt reads small windows at chunk-boundary-crossing offsets.
func checkReadAt(c *checker, name string, fr *io.SectionReader, want []byte) {
	n := int64(len(want))
	offs := []int64{0, n / 2, n - 1}
	for _, cs := range []int64{1000, 65536, 1000000, 4 << 20} {
		if cs < n {
			offs = append(offs, cs-3)
		}
	}
	for _, off := range offs {
		if off < 0 || off >= n {
			continue
		}
		end := off + 10
		if end > n {
			end = n
		}
		buf := make([]byte, end-off)
		if _, err := fr.ReadAt(buf, off); err != nil && err != io.EOF {
			c.fail("%s: ReadAt(%d, %d): %v", quote(name), off, len(buf), err)
			continue
		}
		if !bytes.Equal(buf, want[off:end]) {
			c.fail("%s: ReadAt(%d, %d) returns wrong bytes", quote(name), off, len(buf))
		}
	}
}

// basicPAX are the PAX keys that only re-encode header fields.
var basicPAX = map[string]bool{
	"path": true, "linkpath": true, "size": true, "uid": true, "gid": true, "uname": true,
	"gname": true, "mtime": true, "atime": true, "ctime": true,
}

func extraPAX(h *tar.Header) map[string]string {
	m := map[string]string{}
	for k, v := range h.PAXRecords {
		if !basicPAX[k] && !strings.HasPrefix(k, "GNU.sparse.") {
			m[k] = v
		}
	}
	return m
}

// checkStream gunzips the whole blob (multistream) and parses it as a tar.
func checkStream(c *checker, sr *io.SectionReader, byTOCName map[string]*srcEntry, order []string) (string, []byte, error) {
	zr, err := gzip.NewReader(bufio.NewReaderSize(io.NewSectionReader(sr, 0, sr.Size()), 1<<20))
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(zr, h))
	var tocBytes []byte
	i := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, err
		}
		name := jsonString(cleanEntryName(hdr.Name))
		data, err := io.ReadAll(tr)
		if err != nil {
			return "", nil, err
		}
		if tocBytes != nil {
			c.fail("tar stream: %s after stargz.index.json", quote(hdr.Name))
		}
		if hdr.Name == tocTarName {
			tocBytes = data
			continue
		}
		if i >= len(order) || order[i] != name {
			want := "(end)"
			if i < len(order) {
				want = order[i]
			}
			c.fail("tar stream: entry %d is %s, TOC says %s", i, quote(name), quote(want))
			return "", nil, fmt.Errorf("tar stream does not follow the TOC order")
		}
		i++
		if name == prefetchLandmark || name == noPrefetchLandmark {
			c.eq("tar landmark content", name, data, []byte{0x0f})
			continue
		}
		s := byTOCName[name]
		if s == nil {
			continue // reported from the TOC
		}
		w := s.hdr
		c.eq("tar name", name, hdr.Name, w.Name)
		c.eq("tar typeflag", name, tocType(hdr), tocType(w))
		c.eq("tar linkname", name, hdr.Linkname, w.Linkname)
		c.eq("tar mode", name, hdr.Mode, w.Mode)
		c.eq("tar uid", name, hdr.Uid, w.Uid)
		c.eq("tar gid", name, hdr.Gid, w.Gid)
		c.eq("tar uname", name, hdr.Uname, w.Uname)
		c.eq("tar gname", name, hdr.Gname, w.Gname)
		c.eq("tar size", name, hdr.Size, w.Size)
		c.eq("tar mtime", name, hdr.ModTime.UTC().String(), w.ModTime.UTC().String())
		if !w.AccessTime.IsZero() {
			c.eq("tar atime", name, hdr.AccessTime.UTC().String(), w.AccessTime.UTC().String())
		}
		if !w.ChangeTime.IsZero() {
			c.eq("tar ctime", name, hdr.ChangeTime.UTC().String(), w.ChangeTime.UTC().String())
		}
		if w.Typeflag == tar.TypeChar || w.Typeflag == tar.TypeBlock {
			c.eq("tar devmajor", name, hdr.Devmajor, w.Devmajor)
			c.eq("tar devminor", name, hdr.Devminor, w.Devminor)
		}
		c.eq("tar xattrs", name, xattrsOf(hdr), xattrsOf(w))
		c.eq("tar other PAX records", name, extraPAX(hdr), extraPAX(w))
		if isReg(w) && !bytes.Equal(data, s.data) {
			c.fail("%s: tar content differs from the source", quote(name))
		}
	}
	if i != len(order) {
		c.fail("tar stream has %d entries before the TOC, TOC has %d", i, len(order))
	}
	if tocBytes == nil {
		c.fail("tar stream has no stargz.index.json entry")
	}
	// The rest of the stream (after the tar trailer, the footer) counts in the DiffID.
	if _, err := io.Copy(h, zr); err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil)), tocBytes, nil
}

// jsonString is what Go's encoding/json makes of a byte string: each byte that is not part
// of valid UTF-8 becomes U+FFFD.
func jsonString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
