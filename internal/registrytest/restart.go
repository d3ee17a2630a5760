package registrytest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Restartable serves a handler on a fixed loopback address and can be
// stopped (listener and every connection closed, as when a registry is
// killed) and started again on the same address, with the same handler
// and so the same content.
type Restartable struct {
	// Addr is host:port of the server.
	Addr    string
	handler http.Handler

	mu  sync.Mutex
	srv *http.Server
}

// StartRestartable serves h on a new loopback port. Close it with Stop.
func StartRestartable(h http.Handler) (*Restartable, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Restartable{Addr: ln.Addr().String(), handler: h}
	s.serve(ln)
	return s, nil
}

func (s *Restartable) serve(ln net.Listener) {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Stop closes the listener and every connection at once. It may be called
// when stopped.
func (s *Restartable) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart listens on the same address again (retrying for a few seconds
// while the port is still held) and serves the same handler.
func (s *Restartable) Restart() error {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return errors.New("server is running")
	}
	var lastErr error
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", s.Addr)
		if err == nil {
			s.serve(ln)
			return nil
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("listen on %s again: %w", s.Addr, lastErr)
}
