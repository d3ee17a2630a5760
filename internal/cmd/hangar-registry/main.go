// Command hangar-registry serves a throwaway distribution registry on
// loopback, for the demo and the benchmark, and prints what a registry
// holds.
//
//	hangar-registry [serve] [-addr 127.0.0.1:0] [-addr-file FILE] [-root DIR]
//	hangar-registry state [-json] http://127.0.0.1:PORT
//
// serve (the default) runs a real registry (github.com/distribution/
// distribution/v3, no authentication, plain HTTP) in memory, or on disk
// under -root, until SIGINT or SIGTERM. It only listens on loopback. Once
// it listens it prints the chosen host:port on stdout, and writes it to
// -addr-file when given (atomically: the file appears complete, and the
// registry accepts connections from then on).
//
// state lists every tag of every repository, one per line: "ref digest
// mediaType" (or JSON lines with -json), sorted by ref.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "state":
		err = state(args)
	case "help":
		fmt.Println("usage: hangar-registry [serve] [-addr 127.0.0.1:0] [-addr-file FILE] [-root DIR]\n       hangar-registry state [-json] http://127.0.0.1:PORT")
	default:
		err = fmt.Errorf("unknown command %q (serve, state)", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hangar-registry:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on")
	addrFile := fs.String("addr-file", "", "write the chosen host:port to this file")
	root := fs.String("root", "", "store content on disk under this directory (default: in memory)")
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", *addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-addr %q: only loopback addresses are allowed (the registry has no authentication)", *addr)
	}
	if *root != "" {
		if err := os.MkdirAll(*root, 0o755); err != nil {
			return err
		}
	}
	h, err := registrytest.NewHandler(registrytest.Options{RootDir: *root})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	chosen := ln.Addr().String()
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(chosen+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			return err
		}
	}
	fmt.Println(chosen)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
	case err := <-errc:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if *addrFile != "" {
		_ = os.Remove(filepath.Clean(*addrFile))
	}
	return nil
}

func state(args []string) error {
	fs := flag.NewFlagSet("state", flag.ExitOnError)
	asJSON := fs.Bool("json", false, "print JSON lines")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: hangar-registry state [-json] http://127.0.0.1:PORT")
	}
	base := strings.TrimSuffix(fs.Arg(0), "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	tags, err := registrytest.State(&http.Client{Timeout: time.Minute}, base)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	for _, t := range tags {
		if *asJSON {
			if err := enc.Encode(t); err != nil {
				return err
			}
			continue
		}
		fmt.Printf("%s %s %s\n", t.Ref, t.Digest, t.MediaType)
	}
	return nil
}
