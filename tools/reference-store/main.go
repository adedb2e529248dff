// stargz-store: the reference lazy store (containerd/stargz-snapshotter v0.12, Debian's
// golang-github-containerd-stargz-snapshotter-dev) as a small command, for `seekable bench`
// to compare against. Debian packages the `store` library but not `cmd/stargz-store`; this
// is the part of that command the benchmark needs, built offline by build.sh.
//
// Usage: stargz-store [-root DIR] [-background-fetch] [-prefetch] MOUNTPOINT
//
// It mounts MOUNTPOINT/<base64 ref>/<layer digest>/{diff,info,blob,use} (FUSE), prints
// "ready" on stdout once mounted, and unmounts on SIGINT/SIGTERM. By default background
// fetch and prefetch are off (the benchmark measures on-demand reads). The registry is
// reached over plain HTTP when it is on localhost/127.0.0.0/8, anonymously.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/containerd/containerd/log"
	"github.com/containerd/containerd/reference"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/stargz-snapshotter/fs/config"
	"github.com/containerd/stargz-snapshotter/fs/source"
	"github.com/containerd/stargz-snapshotter/metadata/memory"
	"github.com/containerd/stargz-snapshotter/store"
	"github.com/sirupsen/logrus"
)

func main() {
	root := flag.String("root", "/tmp/stargz-store-root", "directory for the store's state and cache")
	backgroundFetch := flag.Bool("background-fetch", false, "fetch whole layers in the background (after 5 s idle)")
	prefetch := flag.Bool("prefetch", false, "prefetch each layer's prioritized region on first access")
	debug := flag.Bool("debug", false, "debug logs and FUSE tracing")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: stargz-store [-root DIR] [-background-fetch] [-prefetch] MOUNTPOINT")
		os.Exit(2)
	}
	mountpoint := flag.Arg(0)
	level := logrus.WarnLevel
	if *debug {
		level = logrus.DebugLevel
	}
	logrus.SetLevel(level)
	logrus.SetOutput(os.Stderr)
	ctx := log.WithLogger(context.Background(), log.L)

	if err := os.MkdirAll(*root, 0o700); err != nil {
		fail("%v", err)
	}
	cfg := config.Config{
		NoPrefetch:        !*prefetch,
		NoBackgroundFetch: !*backgroundFetch,
		NoPrometheus:      true,
		Debug:             *debug,
	}
	hosts := registryHosts
	manager, err := store.NewLayerManager(ctx, *root, hosts, memory.NewReader, cfg)
	if err != nil {
		fail("layer manager: %v", err)
	}
	if err := store.Mount(ctx, mountpoint, manager, *debug); err != nil {
		fail("mount %s: %v", mountpoint, err)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	if err := syscall.Unmount(mountpoint, syscall.MNT_DETACH); err != nil {
		fail("unmount %s: %v", mountpoint, err)
	}
}

// registryHosts is service/resolver.RegistryHostsFromConfig with no mirrors and anonymous
// auth (that package also pulls in the CRI API, which Debian does not package): plain HTTP
// for localhost, and one plain net/http client (no retries: a failure must show).
var registryHosts source.RegistryHosts = func(ref reference.Spec) ([]docker.RegistryHost, error) {
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 30 * time.Second}
	h := docker.RegistryHost{
		Client:       client,
		Host:         ref.Hostname(),
		Scheme:       "https",
		Path:         "/v2",
		Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve,
		Authorizer:   docker.NewDockerAuthorizer(docker.WithAuthClient(client)),
	}
	if local, _ := docker.MatchLocalhost(h.Host); local {
		h.Scheme = "http"
	}
	return []docker.RegistryHost{h}, nil
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "stargz-store: "+format+"\n", args...)
	os.Exit(1)
}
