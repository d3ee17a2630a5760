package plugin_test

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// TestDockerLoginThenLoad is what a user does: `docker login` to an HTTPS
// registry with a self-signed certificate and htpasswd auth, then `docker
// hangar load` with no extra flag. The registry is on 127.0.0.1, which
// docker (and the plugin, decisions.md D6) treats as insecure: no
// certificate verification. With no docker daemon reachable, the docker
// CLI logs in client-side and stores the credentials in config.json.
func TestDockerLoginThenLoad(t *testing.T) {
	archive := basicArchive(t)
	want := basicState(t, archive)
	const user, pass = "alice", "s3cret-Pa55"
	ca, err := registrytest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := ca.ServerTLS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	auth, err := registrytest.HtpasswdAuth(filepath.Join(t.TempDir(), "htpasswd"), map[string]string{user: pass})
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.MustStart(t, registrytest.Options{Auth: auth, TLS: serverTLS})
	cfg := dockerConfig(t)

	// The CLI really checks the password against the registry.
	out, errOut, code := dockerStdin(t, cfg, "wrong-Pa55\n", "login", "-u", user, "--password-stdin", reg.Host())
	if code == 0 {
		t.Fatalf("docker login with a wrong password succeeded:\n%s%s", out, errOut)
	}
	t.Logf("docker login with a wrong password: %s", strings.TrimSpace(errOut))

	out, errOut, code = dockerStdin(t, cfg, pass+"\n", "login", "-u", user, "--password-stdin", reg.Host())
	if code != 0 {
		t.Fatalf("docker login: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "Login Succeeded") {
		t.Errorf("docker login did not succeed:\n%s%s", out, errOut)
	}
	// docker login must have stored the credentials in config.json (no
	// credential store is configured or detected here).
	data, err := os.ReadFile(filepath.Join(cfg, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Auths      map[string]struct{ Auth string } `json:"auths"`
		CredsStore string                           `json:"credsStore"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatalf("config.json: %v\n%s", err, data)
	}
	if conf.CredsStore != "" || conf.Auths[reg.Host()].Auth != base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) {
		t.Fatalf("docker login did not store the credentials in config.json auths:\n%s", data)
	}

	out, errOut, code = docker(t, cfg, "hangar", "load", "-s", archive, "-d", reg.Host())
	if code != 0 {
		t.Fatalf("docker hangar load: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, pass) {
		t.Errorf("the password appears in the output:\n%s%s", out, errOut)
	}
	client := &http.Client{Transport: basicAuth{user, pass, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}}
	got, err := registrytest.State(client, reg.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	if diff := registrytest.DiffState(want, got); diff != "" {
		t.Errorf("registry state differs from the reference state:\n%s", diff)
	}
}
