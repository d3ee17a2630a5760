//go:build unix

package oras

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// writeHangingHelper writes dir/docker-credential-<name>: it starts a child
// that sleeps, records both process ids, and waits forever.
func writeHangingHelper(t *testing.T, dir, name string) {
	t.Helper()
	script := fmt.Sprintf("#!/bin/sh\nsleep 600 &\necho $! > %[1]s/child.pid\necho $$ > %[1]s/helper.pid\nwait\n", dir)
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// readPid waits for dir/name to hold a process id.
func readPid(t *testing.T, dir, name string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the helper did not start (no %s)", name)
	return 0
}

// alive reports whether pid runs (a zombie waiting for its reaper does not
// count).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// waitGone waits up to 10 s for the processes to end.
func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d of the credential helper is still running", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// hangingHelperRegistry starts a registry wanting basic auth and a docker
// config whose credsStore is a helper that never answers.
func hangingHelperRegistry(t *testing.T) (host string, opts RegistryOptions, dir string) {
	t.Helper()
	authCfg, err := registrytest.HtpasswdAuth(filepath.Join(t.TempDir(), "htpasswd"), map[string]string{"u": "p"})
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.MustStart(t, registrytest.Options{Auth: authCfg})
	dir = t.TempDir()
	writeHangingHelper(t, dir, "hang")
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	opts, _ = testOptions(t)
	if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{CredsStore: "hang"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Leave nothing behind, even when the test fails.
		for _, f := range []string{"helper.pid", "child.pid"} {
			if data, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
	return reg.Host(), opts, dir
}

func TestCredentialHelperCancelled(t *testing.T) {
	host, opts, dir := hangingHelperRegistry(t)
	r := mustRegistry(t, host, opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Ping(ctx, true) }()
	helper, child := readPid(t, dir, "helper.pid"), readPid(t, dir, "child.pid")
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Ping = %v; want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ping did not return after its context was cancelled: the credential helper hangs it")
	}
	waitGone(t, helper, child)
}

func TestCredentialHelperTimeout(t *testing.T) {
	host, opts, dir := hangingHelperRegistry(t)
	opts.CredentialHelperTimeout = 500 * time.Millisecond
	r := mustRegistry(t, host, opts)
	done := make(chan error, 1)
	go func() { done <- r.Ping(testContext(t), true) }()
	helper, child := readPid(t, dir, "helper.pid"), readPid(t, dir, "child.pid")
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "docker-credential-hang did not answer within 500ms") {
			t.Fatalf("Ping = %v; want the helper's time limit", err)
		}
		t.Log(err)
	case <-time.After(10 * time.Second):
		t.Fatal("Ping did not return: the credential helper's time limit was not applied")
	}
	waitGone(t, helper, child)
	// The failure is kept: the helper is not run again for this registry.
	_ = os.Remove(filepath.Join(dir, "helper.pid"))
	if err := r.Ping(testContext(t), true); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("second Ping = %v; want the same failure", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "helper.pid")); err == nil {
		t.Fatal("the helper ran again")
	}
}

func TestCredentialHelperAnswers(t *testing.T) {
	dir := t.TempDir()
	if err := registrytest.WriteCredentialHelper(dir, "store", map[string]registrytest.HelperCredential{
		"user.example.com":  {Username: "alice", Secret: "a-pass"},
		"token.example.com": {Username: "<token>", Secret: "identity-1"},
		"env.example.com":   {Username: "helper", Secret: "h-pass"},
	}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DOCKER_AUTH_CONFIG", `{"auths":{"env.example.com":{"auth":"`+base64.StdEncoding.EncodeToString([]byte("envuser:e-pass"))+`"}}}`)
	cfgDir := t.TempDir()
	if err := registrytest.WriteDockerConfig(cfgDir, registrytest.DockerConfig{CredsStore: "store",
		CredHelpers: map[string]string{"file.example.com": ""},
		Auths: map[string]registrytest.DockerAuth{
			"file.example.com": {Username: "bob", Password: "b-pass"},
			"none.example.com": {RegistryToken: "rt"},
		}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want auth.Credential
	}{
		{"user.example.com", auth.Credential{Username: "alice", Password: "a-pass"}},
		{"token.example.com", auth.Credential{RefreshToken: "identity-1"}},
		{"env.example.com", auth.Credential{Username: "envuser", Password: "e-pass"}},
		{"file.example.com", auth.Credential{Username: "bob", Password: "b-pass"}}, // an empty credHelpers entry opts out of credsStore
		{"none.example.com", auth.Credential{AccessToken: "rt"}},                   // not in the helper: the file's entry, as docker's native store
		{"other.example.com", auth.EmptyCredential},
	}
	s := newCredentialStore(cfgDir, 0, nil)
	for _, tt := range tests {
		got, err := s.lookup(testContext(t), tt.host)
		if err != nil || got != tt.want {
			t.Errorf("lookup(%s) = %+v, %v; want %+v", tt.host, got, err, tt.want)
		}
	}
	if n := helperCalls(t, dir, "store"); n != 4 {
		t.Errorf("helper ran %d times; want 4 (not for DOCKER_AUTH_CONFIG, nor for the opted-out registry)", n)
	}
}
