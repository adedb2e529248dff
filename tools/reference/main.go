// Command estargz-ref wraps the reference eStargz implementation
// (github.com/containerd/stargz-snapshotter/estargz v0.12.0, Debian's package) for
// seekable's conformance tests.
//
//	estargz-ref build IN OUT [-chunk-size N] [-level N] [-prioritized FILE] [-parallelism N]
//	estargz-ref check BLOB -toc-digest D -tar SRC [-prioritized FILE] [-diff-id D] [-legacy]
//	estargz-ref legacy IN OUT [-chunk-size N]
//	estargz-ref expect SRC
//	estargz-ref fixtures DIR
//
// Build it offline in GOPATH mode (see build.sh). Exit status: 0 success, 1 failure
// (check: one line per mismatch), 2 usage error.
package main

import (
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/containerd/stargz-snapshotter/estargz"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "build":
		err = cmdBuild(args)
	case "check":
		os.Exit(cmdCheck(args))
	case "legacy":
		err = cmdLegacy(args)
	case "expect":
		err = cmdExpect(args)
	case "fixtures":
		err = cmdFixtures(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "estargz-ref %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: estargz-ref build|check|legacy|expect|fixtures ... (see main.go)")
	os.Exit(2)
}

// parseArgs parses flags that may appear before, between or after positionals.
func parseArgs(fs *flag.FlagSet, args []string, npos int) []string {
	fs.SetOutput(os.Stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			os.Exit(2)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != npos {
		fmt.Fprintf(os.Stderr, "estargz-ref %s: want %d arguments, got %d\n", fs.Name(), npos, len(pos))
		os.Exit(2)
	}
	return pos
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSuffix(l, "\r")
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

func cmdBuild(args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	chunkSize := fs.Int("chunk-size", 0, "chunk size (default: the reference's, 4 MiB)")
	level := fs.Int("level", 9, "gzip level")
	prioritized := fs.String("prioritized", "", "file listing prioritized paths, one a line")
	parallelism := fs.Int("parallelism", 0, "GOMAXPROCS during Build (Build splits the layer into that many parts)")
	pos := parseArgs(fs, args, 2)
	if *parallelism > 0 {
		runtime.GOMAXPROCS(*parallelism)
	}
	in, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	opts := []estargz.Option{estargz.WithCompressionLevel(*level)}
	if *chunkSize > 0 {
		opts = append(opts, estargz.WithChunkSize(*chunkSize))
	}
	if *prioritized != "" {
		files, err := readLines(*prioritized)
		if err != nil {
			return err
		}
		opts = append(opts, estargz.WithPrioritizedFiles(files))
	}
	blob, err := estargz.Build(io.NewSectionReader(in, 0, st.Size()), opts...)
	if err != nil {
		return err
	}
	defer blob.Close()
	tmp := pos[1] + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), blob)
	if err == nil {
		err = out.Close()
	} else {
		out.Close()
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, pos[1]); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"tocDigest": blob.TOCDigest().String(),
		"diffID":    blob.DiffID().String(),
		"size":      n,
		"digest":    fmt.Sprintf("sha256:%x", h.Sum(nil)),
	})
}

func cmdLegacy(args []string) error {
	fs := flag.NewFlagSet("legacy", flag.ContinueOnError)
	chunkSize := fs.Int("chunk-size", 4<<20, "chunk size")
	pos := parseArgs(fs, args, 2)
	src, err := readSource(pos[0])
	if err != nil {
		return err
	}
	out, err := os.Create(pos[1])
	if err != nil {
		return err
	}
	if err := writeLegacy(src, out, int64(*chunkSize)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func cmdExpect(args []string) error {
	fs := flag.NewFlagSet("expect", flag.ContinueOnError)
	pos := parseArgs(fs, args, 1)
	src, err := readSource(pos[0])
	if err != nil {
		return err
	}
	return writeExpected(src, os.Stdout)
}
