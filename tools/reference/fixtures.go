package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Fixture layers covering the tar features real layers carry. Deterministic: fixed seeds
// and times, so the bytes are the same on every run.

var base = time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)

type tarBuilder struct {
	buf bytes.Buffer
	tw  *tar.Writer
	err error
}

func newTar() *tarBuilder {
	t := &tarBuilder{}
	t.tw = tar.NewWriter(&t.buf)
	return t
}

func (t *tarBuilder) add(h *tar.Header, data []byte) {
	if t.err != nil {
		return
	}
	if h.ModTime.IsZero() {
		h.ModTime = base
	}
	if h.Typeflag == tar.TypeReg {
		h.Size = int64(len(data))
	}
	if h.Uid == 0 && h.Uname == "" {
		h.Uname = "root"
	}
	if h.Gid == 0 && h.Gname == "" {
		h.Gname = "root"
	}
	if err := t.tw.WriteHeader(h); err != nil {
		t.err = fmt.Errorf("%s: %w", h.Name, err)
		return
	}
	if len(data) > 0 {
		_, t.err = t.tw.Write(data)
	}
}

func (t *tarBuilder) dir(name string, mode int64) {
	t.add(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}, nil)
}

func (t *tarBuilder) file(name string, mode int64, data []byte) {
	t.add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, data)
}

// raw appends one entry written by Go and then patched: typeflag '\x00' (the legacy
// TypeRegA; a trailing slash makes it a directory) and, when v7, no USTAR magic, owner names
// or prefix (a pre-POSIX header).
func (t *tarBuilder) raw(h *tar.Header, data []byte, v7 bool) {
	if t.err != nil {
		return
	}
	var one bytes.Buffer
	tw := tar.NewWriter(&one)
	h.Format = tar.FormatUSTAR
	h.Size = int64(len(data))
	if h.ModTime.IsZero() {
		h.ModTime = base
	}
	if err := tw.WriteHeader(h); err != nil {
		t.err = err
		return
	}
	if _, err := tw.Write(data); err != nil {
		t.err = err
		return
	}
	if err := tw.Flush(); err != nil {
		t.err = err
		return
	}
	b := one.Bytes()
	b[156] = 0
	if v7 {
		for i := 257; i < 512; i++ {
			b[i] = 0
		}
	}
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	if t.err = t.tw.Flush(); t.err == nil {
		t.buf.Write(b)
	}
}

func (t *tarBuilder) bytes() ([]byte, error) {
	if t.err != nil {
		return nil, t.err
	}
	if err := t.tw.Close(); err != nil {
		return nil, err
	}
	return t.buf.Bytes(), nil
}

// text is compressible pseudo-text of n bytes.
func text(seed int64, n int) []byte {
	words := []string{"layer", "chunk", "gzip", "member", "offset", "toc", "landmark", "prefetch", "digest", "sha256", "entry", "tar"}
	r := rand.New(rand.NewSource(seed))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.Intn(len(words))])
		if r.Intn(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func random(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

const longDir = "opt/long-directory-name-0123456789/long-directory-name-0123456789/"

var (
	longName     = longDir + strings.Repeat("f", 120) + ".txt"
	longLinkName = strings.Repeat("target/", 16) + "x"
	unicodeName  = "opt/ünïcødé-文件.txt"
	capability   = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00}
)

func featuresTar() ([]byte, error) {
	t := newTar()
	t.dir("./", 0755)
	t.add(&tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0755, Format: tar.FormatPAX,
		PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y"}}, nil)
	t.file("etc/passwd", 0644, []byte("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"))
	t.file("etc/hostname", 0644, nil)
	t.file("etc/.wh.oldconf", 0644, nil)
	t.add(&tar.Header{Typeflag: tar.TypeDir, Name: "usr", Mode: 0755}, nil) // no trailing slash
	t.file("usr/.wh..wh..opq", 0644, nil)
	t.dir("usr/bin/", 0755)
	t.file("usr/bin/tool", 0100755, text(1, 200<<10)) // mode with type bits
	t.add(&tar.Header{Typeflag: tar.TypeLink, Name: "usr/bin/tool-hardlink", Linkname: "usr/bin/tool", Mode: 0100755}, nil)
	t.add(&tar.Header{Typeflag: tar.TypeLink, Name: "usr/bin/tool-hardlink2", Linkname: "./usr/bin/tool-hardlink", Mode: 0755}, nil)
	t.add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/bin/sh", Linkname: "tool", Mode: 0777}, nil)
	t.add(&tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/ping", Mode: 04755, Format: tar.FormatPAX,
		PAXRecords: map[string]string{
			"SCHILY.xattr.security.capability": string(capability),
			"SCHILY.xattr.user.comment":        "hello <world> & \"friends\"",
			"SCHILY.xattr.user.binary":         "\xff\xfe\x00\x80\x7f",
			"SCHILY.xattr.user.empty":          "",
		}}, text(2, 5000))
	t.file("lib/libfoo.so.1", 0644, text(3, 3000)) // parent "lib" is not in the tar
	t.dir("opt/", 0755)
	t.file(longName, 0644, text(4, 777)) // PAX path (a component > 100 bytes)
	t.file(unicodeName, 0644, []byte("non-ASCII name\n"))
	t.add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "opt/longlink", Linkname: longLinkName, Mode: 0777}, nil)
	t.add(&tar.Header{Typeflag: tar.TypeLink, Name: "opt/hardlink-to-long", Linkname: longName, Mode: 0644}, nil)
	t.add(&tar.Header{Typeflag: tar.TypeLink, Name: "opt/hardlink-to-unicode", Linkname: unicodeName, Mode: 0644}, nil)
	t.dir("dev/", 0755)
	t.add(&tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0666, Devmajor: 1, Devminor: 3}, nil)
	t.add(&tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Mode: 0660, Devmajor: 8, Devminor: 0, Gid: 6, Gname: "disk"}, nil)
	t.add(&tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop9", Mode: 0660, Devmajor: 259, Devminor: 1048575, Gid: 6, Gname: "disk"}, nil)
	t.add(&tar.Header{Typeflag: tar.TypeFifo, Name: "dev/initctl", Mode: 0600}, nil)
	t.dir("data/", 0755)
	t.dir("data/deep/", 0750)
	t.dir("data/deep/er/", 0750)
	t.dir("data/deep/er/est/", 0750)
	t.file("data/deep/er/est/file.txt", 0640, text(5, 9000))
	t.add(&tar.Header{Typeflag: tar.TypeReg, Name: "data/bigid.txt", Mode: 0644, Uid: 3000000, Gid: 4000000,
		Uname: "bigu", Gname: "bigg"}, []byte("uid and gid beyond 2097151\n"))
	t.add(&tar.Header{Typeflag: tar.TypeReg, Name: "data/user.txt", Mode: 0600, Uid: 1000, Gid: 1000,
		Uname: "user", Gname: "staff"}, []byte("owned by user\n"))
	t.add(&tar.Header{Typeflag: tar.TypeReg, Name: "data/user2.txt", Mode: 0600, Uid: 1000, Gid: 1000,
		Uname: "user", Gname: "staff"}, []byte("owned by user too\n"))
	t.add(&tar.Header{Typeflag: tar.TypeReg, Name: "data/noname.txt", Mode: 0600, Uid: 1001, Gid: 1001}, []byte("no user name\n"))
	for _, c := range []struct {
		name string
		ns   int
	}{{"data/subsec-6.txt", 600_000_000}, {"data/subsec-5.txt", 500_000_000}, {"data/subsec-4.txt", 400_000_001}, {"data/subsec-1ns.txt", 1}} {
		t.add(&tar.Header{Typeflag: tar.TypeReg, Name: c.name, Mode: 0644, Format: tar.FormatPAX,
			ModTime: base.Add(time.Duration(c.ns))}, []byte(c.name+"\n"))
	}
	t.add(&tar.Header{Typeflag: tar.TypeDir, Name: "data/subsec-dir/", Mode: 0755, Format: tar.FormatPAX,
		ModTime: base.Add(999_999_999)}, nil)
	t.add(&tar.Header{Typeflag: tar.TypeReg, Name: "data/times.txt", Mode: 0644, Format: tar.FormatPAX,
		ModTime: base.Add(250 * time.Millisecond), AccessTime: base.Add(time.Hour + 1), ChangeTime: base.Add(2 * time.Hour)},
		[]byte("atime and ctime\n"))
	t.add(&tar.Header{Typeflag: tar.TypeReg, Name: "data/epoch.txt", Mode: 0644, ModTime: time.Unix(0, 0)}, []byte("mtime 0\n"))
	t.add(&tar.Header{Typeflag: tar.TypeReg, Name: "data/y2038.txt", Mode: 0644, ModTime: time.Unix(1<<33, 0)}, []byte("mtime 2^33\n"))
	t.add(&tar.Header{Typeflag: tar.TypeReg, Name: "data/pre-epoch.txt", Mode: 0644, ModTime: time.Unix(-86400*365, 0)}, []byte("mtime in 1969\n"))
	t.file("data/random.bin", 0644, random(6, 300_000))
	t.file("data/exact-64KiB", 0644, text(7, 65536))
	t.file("data/64KiB-plus-1", 0644, text(8, 65537))
	t.file("data/exact-1MB", 0644, random(9, 1_000_000))
	t.file("data/special <chars> & \"quotes\" \\ back.txt", 0644, []byte("go escapes <, > and &\n"))
	t.file("data/tab\tnewline\nname.txt", 0644, []byte("control characters in a name\n"))
	return t.bytes()
}

func gnuTar() ([]byte, error) {
	t := newTar()
	gnu := func(h *tar.Header, data []byte) {
		h.Format = tar.FormatGNU
		t.add(h, data)
	}
	long := "gnu/" + strings.Repeat("very-long-gnu-name-", 8) + "end.txt"
	gnu(&tar.Header{Typeflag: tar.TypeDir, Name: "gnu/", Mode: 0755}, nil)
	gnu(&tar.Header{Typeflag: tar.TypeReg, Name: long, Mode: 0644}, text(10, 12345))                                     // ././@LongLink 'L'
	gnu(&tar.Header{Typeflag: tar.TypeSymlink, Name: "gnu/long-symlink", Linkname: "/" + longLinkName, Mode: 0777}, nil) // 'K'
	gnu(&tar.Header{Typeflag: tar.TypeLink, Name: "gnu/hardlink-to-long", Linkname: long, Mode: 0644}, nil)
	gnu(&tar.Header{Typeflag: tar.TypeReg, Name: "gnu/bigid", Mode: 0100644, Uid: 5000000, Gid: 6000000,
		Uname: "gnuuser", Gname: "gnugroup"}, []byte("base-256 uid and gid\n")) // base-256 numbers
	gnu(&tar.Header{Typeflag: tar.TypeReg, Name: "gnu/ünïcødé.txt", Mode: 0644}, []byte("GNU non-ASCII name\n"))
	gnu(&tar.Header{Typeflag: tar.TypeChar, Name: "gnu/tty", Mode: 0620, Devmajor: 4, Devminor: 1}, nil)
	gnu(&tar.Header{Typeflag: tar.TypeFifo, Name: "gnu/fifo", Mode: 0644}, nil)
	gnu(&tar.Header{Typeflag: tar.TypeReg, Name: "gnu/empty", Mode: 0644}, nil)
	gnu(&tar.Header{Typeflag: tar.TypeReg, Name: "gnu/data.bin", Mode: 0644}, random(11, 150_000))
	gnu(&tar.Header{Typeflag: tar.TypeReg, Name: "gnu/.wh.gone", Mode: 0644}, nil)
	// Names that are not UTF-8 (Latin-1 bytes): the TOC JSON turns each bad byte into U+FFFD.
	gnu(&tar.Header{Typeflag: tar.TypeReg, Name: "gnu/caf\xe9-latin1.txt", Mode: 0644}, []byte("latin-1 name\n"))
	gnu(&tar.Header{Typeflag: tar.TypeSymlink, Name: "gnu/link-to-latin1", Linkname: "caf\xe9-latin1.txt", Mode: 0777}, nil)
	return t.bytes()
}

func dupsTar() ([]byte, error) {
	t := newTar()
	t.dir(".", 0755) // the root, cleaned to ""
	t.file("a.txt", 0644, []byte("first a\n"))
	t.file(".prefetch.landmark", 0644, []byte("not a landmark"))
	t.dir("dir/", 0700)
	t.file("dir/inner.txt", 0644, []byte("inner\n"))
	t.file("b.txt", 0644, []byte("first b\n"))
	t.add(&tar.Header{Typeflag: tar.TypeLink, Name: "b-link", Linkname: "b.txt", Mode: 0644}, nil)
	t.file("stargz.index.json", 0644, []byte(`{"version":1,"entries":[]}`))
	t.file("./a.txt", 0600, []byte("second a, the one that wins\n"))
	t.file("c.txt", 0644, []byte("c as a file\n"))
	t.add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "c.txt", Linkname: "a.txt", Mode: 0777}, nil)
	t.dir("dir", 0755) // duplicate of "dir/": the later mode wins
	t.file("./.no.prefetch.landmark", 0644, []byte{0x0f})
	t.file("b.txt", 0640, text(12, 70000)) // after the hardlink to it
	t.file("sub/stargz.index.json", 0644, []byte("kept: only the top-level name is reserved\n"))
	t.file("/abs/path.txt", 0644, []byte("absolute name\n"))
	t.file("e.txt", 0644, []byte("e before becoming a dir\n"))
	t.dir("e.txt/", 0755)
	t.file("./x/../y.txt", 0644, []byte("unclean name\n"))
	t.file("dir//double//slash.txt", 0644, []byte("double slashes\n"))
	return t.bytes()
}

func bigTar() ([]byte, error) {
	t := newTar()
	t.dir("big/", 0755)
	t.file("big/empty", 0644, nil)
	t.file("big/exact-4MiB", 0644, text(20, 4<<20))
	t.file("big/4MiB-plus-1", 0644, text(21, 4<<20+1))
	t.file("big/random-10MiB", 0644, random(22, 10<<20))
	t.file("big/small.txt", 0644, []byte("small\n"))
	return t.bytes()
}

// v7Tar starts with a pre-POSIX header (no USTAR magic, no owner names) and has a legacy
// '\x00' typeflag on a regular file.
func v7Tar() ([]byte, error) {
	t := newTar()
	t.raw(&tar.Header{Typeflag: tar.TypeReg, Name: "v7-file.txt", Mode: 0644, Uid: 1, Gid: 1}, []byte("v7 header, no magic\n"), true)
	t.raw(&tar.Header{Typeflag: tar.TypeReg, Name: "rega.txt", Mode: 0600, Uname: "root", Gname: "root"}, text(30, 3000), false)
	t.dir("newdir/", 0755)
	t.file("newdir/ustar.txt", 0644, []byte("a normal entry after old ones\n"))
	return t.bytes()
}

// regaDirTar has a directory written the pre-POSIX way: typeflag '\x00' and a trailing
// slash (Go's reader, and so the reference, makes it a directory).
func regaDirTar() ([]byte, error) {
	t := newTar()
	t.dir("newdir/", 0755)
	t.raw(&tar.Header{Typeflag: tar.TypeDir, Name: "olddir/", Mode: 0755, Uname: "root", Gname: "root"}, nil, false)
	t.file("olddir/inside.txt", 0644, []byte("in a legacy directory\n"))
	return t.bytes()
}

func gz(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func cmdFixtures(args []string) error {
	fs := flag.NewFlagSet("fixtures", flag.ContinueOnError)
	pos := parseArgs(fs, args, 1)
	dir := pos[0]
	if err := os.MkdirAll(dir, 0755); err != nil {
		return err
	}
	type fixture struct {
		name        string
		make        func() ([]byte, error)
		gzip        bool
		prioritized []string
	}
	featuresPrio := []string{
		"etc/passwd",
		"usr/bin/tool-hardlink2", // hardlink to a hardlink: both targets move first
		"/data/deep/er/est/file.txt",
		"./etc/hostname",
		"usr/bin/sh",
	}
	fixtures := []fixture{
		{"features", featuresTar, false, featuresPrio},
		{"features", featuresTar, true, featuresPrio},
		{"gnu", gnuTar, false, []string{"gnu/hardlink-to-long", "gnu/data.bin"}},
		{"dups", dupsTar, false, []string{"b-link", "a.txt", "dir/inner.txt"}},
		{"big", bigTar, false, []string{"big/4MiB-plus-1", "big/small.txt"}},
		{"v7", v7Tar, false, []string{"newdir/ustar.txt"}},
		{"rega-dir", regaDirTar, false, []string{"olddir/inside.txt"}},
	}
	for _, f := range fixtures {
		b, err := f.make()
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		file := f.name + ".tar"
		if f.gzip {
			if b, err = gz(b); err != nil {
				return err
			}
			file += ".gz"
		}
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, b, 0644); err != nil {
			return err
		}
		src, err := readSource(p)
		if err != nil {
			return err
		}
		if _, err := src.expectedOrder(f.prioritized); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		var exp bytes.Buffer
		if err := writeExpected(src, &exp); err != nil {
			return err
		}
		if err := os.WriteFile(p+".expected.json", exp.Bytes(), 0644); err != nil {
			return err
		}
		prio := []byte(strings.Join(f.prioritized, "\n") + "\n")
		if err := os.WriteFile(p+".prioritized.txt", prio, 0644); err != nil {
			return err
		}
		if f.name == "features" && !f.gzip {
			if err := os.WriteFile(filepath.Join(dir, "prioritized.txt"), prio, 0644); err != nil {
				return err
			}
			// A non-ASCII prioritized path (and the hardlink to it), on its own.
			uni := []byte(unicodeName + "\nopt/hardlink-to-unicode\n")
			if err := os.WriteFile(filepath.Join(dir, "unicode-prioritized.txt"), uni, 0644); err != nil {
				return err
			}
		}
	}
	return nil
}
