// Command hangar-latency is the benchmark's model of a distant registry: a
// loopback reverse proxy that waits a fixed time before forwarding each
// request, and counts the requests it forwards by method.
//
//	hangar-latency -target http://127.0.0.1:PORT [-addr 127.0.0.1:0] [-addr-file FILE] [-delay 3ms]
//	hangar-latency counts [-reset] 127.0.0.1:PROXYPORT
//
// serve (the default) listens on -addr and forwards every request to
// -target after -delay (0: none), until SIGINT or SIGTERM. Bodies stream
// both ways (nothing is buffered beyond a copy buffer), connections to the
// target are kept alive and reused, and the Host header is kept, so the
// upload locations a registry returns point at the proxy again. Once it
// listens it prints the chosen host:port on stdout, and writes it to
// -addr-file when given (atomically). Both addresses must be loopback.
//
// counts prints the requests forwarded so far, one "METHOD N" line per
// method, sorted; -reset sets the counts to zero after reading them. It
// asks the proxy's control path, /_hangar-latency/counts, which is neither
// delayed, counted nor forwarded.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// controlPath serves the counts; registries only serve /v2/ and their own
// APIs, never this.
const controlPath = "/_hangar-latency/counts"

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
	case "counts":
		err = counts(args)
	default:
		err = fmt.Errorf("unknown command %q (serve, counts)", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hangar-latency:", err)
		os.Exit(1)
	}
}

// proxy delays, counts and forwards requests.
type proxy struct {
	delay time.Duration
	// sleep waits d or until ctx is done (a seam for tests).
	sleep func(ctx context.Context, d time.Duration) error
	rp    *httputil.ReverseProxy

	mu     sync.Mutex
	counts map[string]int64
}

// newProxy returns a proxy to target (scheme://host:port) that waits delay
// before forwarding each request.
func newProxy(target *url.URL, delay time.Duration) *proxy {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	p := &proxy{delay: delay, sleep: sleepContext, counts: map[string]int64{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// keep the client's Host: the registry builds its upload
			// locations from it, and they must lead back here
			pr.Out.Host = pr.In.Host
		},
		Transport:     transport,
		FlushInterval: -1, // stream responses as they come
		ErrorLog:      log.New(os.Stderr, "hangar-latency: ", log.LstdFlags),
	}
	return p
}

func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == controlPath {
		p.serveCounts(w, r)
		return
	}
	if err := p.sleep(r.Context(), p.delay); err != nil {
		return // the client went away
	}
	p.mu.Lock()
	p.counts[r.Method]++
	p.mu.Unlock()
	p.rp.ServeHTTP(w, r)
}

func (p *proxy) serveCounts(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p.mu.Lock()
	methods := make([]string, 0, len(p.counts))
	for m := range p.counts {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	var b strings.Builder
	for _, m := range methods {
		fmt.Fprintf(&b, "%s %d\n", m, p.counts[m])
	}
	if r.URL.Query().Get("reset") == "1" {
		p.counts = map[string]int64{}
	}
	p.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, b.String())
}

// loopbackHost checks that hostport names a loopback address.
func loopbackHost(what, hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%s %q: %w", what, hostport, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s %q: only loopback addresses are allowed", what, hostport)
	}
	return nil
}

// parseTarget parses -target: http(s)://loopback-host:port, no path.
func parseTarget(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("-target %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("-target %q: want http://HOST:PORT or https://HOST:PORT", s)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, fmt.Errorf("-target %q: want no path or query", s)
	}
	u.Path = ""
	if err := loopbackHost("-target", u.Host); err != nil {
		return nil, err
	}
	return u, nil
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on")
	addrFile := fs.String("addr-file", "", "write the chosen host:port to this file")
	targetFlag := fs.String("target", "", "registry to forward to: http://127.0.0.1:PORT (required)")
	delay := fs.Duration("delay", 3*time.Millisecond, "wait before forwarding each request (0: none)")
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *targetFlag == "" {
		return errors.New("-target is required")
	}
	if *delay < 0 {
		return fmt.Errorf("-delay %s: must not be negative", *delay)
	}
	target, err := parseTarget(*targetFlag)
	if err != nil {
		return err
	}
	if err := loopbackHost("-addr", *addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newProxy(target, *delay), ReadHeaderTimeout: time.Minute}
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

func counts(args []string) error {
	fs := flag.NewFlagSet("counts", flag.ExitOnError)
	reset := fs.Bool("reset", false, "set the counts to zero after reading them")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: hangar-latency counts [-reset] 127.0.0.1:PROXYPORT")
	}
	hostport := strings.TrimPrefix(strings.TrimSuffix(fs.Arg(0), "/"), "http://")
	if err := loopbackHost("proxy", hostport); err != nil {
		return err
	}
	u := "http://" + hostport + controlPath
	if *reset {
		u += "?reset=1"
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", controlPath, resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}
