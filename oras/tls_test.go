package oras

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

func TestTransportSecurity(t *testing.T) {
	ca, err := registrytest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := ca.ServerTLS("127.0.0.1", "localhost", "registry.test")
	if err != nil {
		t.Fatal(err)
	}
	httpsReg := registrytest.MustStart(t, registrytest.Options{TLS: serverTLS})
	plainReg := startRegistry(t, nil)
	mtlsConf := serverTLS.Clone()
	mtlsConf.ClientAuth = tls.RequireAndVerifyClientCert
	mtlsConf.ClientCAs = ca.Pool()
	mtlsReg := registrytest.MustStart(t, registrytest.Options{TLS: mtlsConf})
	_, clientCert, clientKey, err := ca.Issue("client")
	if err != nil {
		t.Fatal(err)
	}

	port := func(reg *registrytest.Registry) string {
		_, p, _ := net.SplitHostPort(reg.Host())
		return p
	}
	type caPlace int
	const (
		noCA caPlace = iota
		systemCA
		configCA
	)
	tests := []struct {
		name       string
		reg        *registrytest.Registry
		named      bool // use registry.test:<port>, dialled to loopback
		tlsVerify  *bool
		ca         caPlace
		clientCert bool
		wantErr    error
		wantMsg    []string
		wantPlain  bool
	}{
		{name: "loopback https skips verification by default", reg: httpsReg},
		{name: "loopback https verified without CA", reg: httpsReg, tlsVerify: boolp(true), wantErr: ErrTLS,
			wantMsg: []string{"certificate signed by unknown authority", "--tls-verify=false", "/ca.crt"}},
		{name: "loopback https verified with system certs.d CA", reg: httpsReg, tlsVerify: boolp(true), ca: systemCA},
		{name: "loopback https verified with config certs.d CA", reg: httpsReg, tlsVerify: boolp(true), ca: configCA},
		{name: "named https without CA", reg: httpsReg, named: true, wantErr: ErrTLS,
			wantMsg: []string{"certificate signed by unknown authority", "/registry.test:"}},
		{name: "named https with CA", reg: httpsReg, named: true, ca: systemCA},
		{name: "named https with tls-verify=false", reg: httpsReg, named: true, tlsVerify: boolp(false)},
		{name: "client certificate", reg: mtlsReg, named: true, ca: configCA, clientCert: true},
		{name: "client certificate missing", reg: mtlsReg, named: true, ca: configCA, wantErr: ErrTLS,
			wantMsg: []string{"client.cert"}},
		{name: "loopback plain HTTP fallback", reg: plainReg, wantPlain: true},
		{name: "loopback plain HTTP refused with tls-verify=true", reg: plainReg, tlsVerify: boolp(true), wantErr: ErrTLS,
			wantMsg: []string{"plain HTTP", "--tls-verify=false"}},
		{name: "named plain HTTP refused by default", reg: plainReg, named: true, wantErr: ErrTLS},
		{name: "named plain HTTP with tls-verify=false", reg: plainReg, named: true, tlsVerify: boolp(false), wantPlain: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, _ := testOptions(t)
			opts.TLSVerify = tt.tlsVerify
			host := tt.reg.Host()
			if tt.named {
				host = "registry.test:" + port(tt.reg)
				opts.dial = dialTo(tt.reg.Host())
			}
			var certsDir string
			switch tt.ca {
			case systemCA:
				certsDir = opts.SystemCertsDir
			case configCA:
				certsDir = filepath.Join(opts.ConfigDir, "certs.d")
			}
			if certsDir != "" {
				dir, err := ca.WriteCertsDir(certsDir, host)
				if err != nil {
					t.Fatal(err)
				}
				if tt.clientCert {
					if err := os.WriteFile(filepath.Join(dir, "client.cert"), clientCert, 0o600); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, "client.key"), clientKey, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			r := mustRegistry(t, host, opts)
			ctx := testContext(t)
			err := r.Ping(ctx, true)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Ping = %v; want %v", err, tt.wantErr)
				}
				t.Logf("error: %v", err)
				for _, m := range tt.wantMsg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("Ping error %q does not mention %q", err, m)
					}
				}
				// Operations fail the same way (the scheme stays unsettled).
				repo := mustRepository(t, r, "library/app")
				if _, err := repo.BlobExists(ctx, randomBlob(t, 1).desc); !errors.Is(err, tt.wantErr) {
					t.Fatalf("BlobExists = %v; want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if r.plainHTTP != tt.wantPlain {
				t.Fatalf("plain HTTP = %t; want %t", r.plainHTTP, tt.wantPlain)
			}
			repo := mustRepository(t, r, "library/app")
			blob := randomBlob(t, 1024)
			if err := repo.PushBlob(ctx, blob.desc, blob.open); err != nil {
				t.Fatalf("PushBlob: %v", err)
			}
			if ok, err := repo.BlobExists(ctx, blob.desc); err != nil || !ok {
				t.Fatalf("BlobExists = %t, %v", ok, err)
			}
		})
	}
}

func TestCertsDirErrors(t *testing.T) {
	ca, err := registrytest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	_, certPEM, _, err := ca.Issue("client")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		files   map[string][]byte
		wantMsg string
	}{
		{"client cert without key", map[string][]byte{"client.cert": certPEM}, "missing key"},
		{"key without client cert", map[string][]byte{"client.key": []byte("x")}, "missing client certificate"},
		{"CA file without certificate", map[string][]byte{"ca.crt": []byte("junk")}, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, _ := testOptions(t)
			dir := filepath.Join(opts.SystemCertsDir, "registry.test:5000")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := NewRegistry("registry.test:5000", opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("NewRegistry = %v; want an error mentioning %q", err, tt.wantMsg)
			}
		})
	}
}

func TestModeFor(t *testing.T) {
	tests := []struct {
		host      string
		tlsVerify *bool
		want      tlsMode
	}{
		{"127.0.0.1:5000", nil, tlsMode{verify: false, fallback: true}},
		{"127.1.2.3", nil, tlsMode{verify: false, fallback: true}},
		{"localhost:5000", nil, tlsMode{verify: false, fallback: true}},
		{"[::1]:5000", nil, tlsMode{verify: false, fallback: true}},
		{"registry.example.com", nil, tlsMode{verify: true}},
		{"10.0.0.1:5000", nil, tlsMode{verify: true}},
		{"127.0.0.1:5000", boolp(true), tlsMode{verify: true}},
		{"registry.example.com", boolp(false), tlsMode{verify: false, fallback: true}},
	}
	for _, tt := range tests {
		if got := modeFor(tt.host, tt.tlsVerify); got != tt.want {
			t.Errorf("modeFor(%s, %v) = %+v; want %+v", tt.host, tt.tlsVerify, got, tt.want)
		}
	}
}
