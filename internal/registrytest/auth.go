package registrytest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"golang.org/x/crypto/bcrypt"
)

// HtpasswdAuth writes an htpasswd file (bcrypt, minimum cost so tests stay
// fast) with users (name -> password) at path and returns distribution's
// "htpasswd" auth configuration for it (basic auth).
func HtpasswdAuth(path string, users map[string]string) (configuration.Auth, error) {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, u := range names {
		h, err := bcrypt.GenerateFromPassword([]byte(users[u]), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	return configuration.Auth{"htpasswd": configuration.Parameters{"realm": "registrytest", "path": path}}, nil
}

// DockerAuth is one entry of a docker config.json "auths".
type DockerAuth struct {
	Username      string
	Password      string
	IdentityToken string
	RegistryToken string
}

// DockerConfig is what WriteDockerConfig writes.
type DockerConfig struct {
	// Auths maps a registry ("host:port", or "https://index.docker.io/v1/")
	// to its credentials, stored as `docker login` does (base64 user:pass).
	Auths map[string]DockerAuth
	// CredsStore names the default credential helper (docker-credential-<name>).
	CredsStore string
	// CredHelpers maps registries to credential helpers.
	CredHelpers map[string]string
}

// WriteDockerConfig writes dir/config.json.
func WriteDockerConfig(dir string, cfg DockerConfig) error {
	type entry struct {
		Auth          string `json:"auth,omitempty"`
		IdentityToken string `json:"identitytoken,omitempty"`
		RegistryToken string `json:"registrytoken,omitempty"`
	}
	out := struct {
		Auths       map[string]entry  `json:"auths"`
		CredsStore  string            `json:"credsStore,omitempty"`
		CredHelpers map[string]string `json:"credHelpers,omitempty"`
	}{Auths: map[string]entry{}, CredsStore: cfg.CredsStore, CredHelpers: cfg.CredHelpers}
	for host, a := range cfg.Auths {
		var e entry
		if a.Username != "" || a.Password != "" {
			e.Auth = base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password))
		}
		e.IdentityToken = a.IdentityToken
		e.RegistryToken = a.RegistryToken
		out.Auths[host] = e
	}
	data, err := json.MarshalIndent(out, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600)
}

// HelperCredential is what a test credential helper answers for a server.
type HelperCredential struct {
	Username string
	Secret   string
}

// WriteCredentialHelper writes an executable shell script
// dir/docker-credential-<name> answering `get` with creds (server URL ->
// credential) as docker's credential helpers do, and "credentials not found
// in native keychain" for other servers. Each `get` appends a line to
// dir/<name>.calls, so tests can count invocations. Put dir first in PATH.
func WriteCredentialHelper(dir, name string, creds map[string]HelperCredential) error {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&b, "echo \"$1\" >> %s\n", shellQuote(filepath.Join(dir, name+".calls")))
	b.WriteString("[ \"$1\" = get ] || exit 1\nread -r server\ncase \"$server\" in\n")
	servers := make([]string, 0, len(creds))
	for s := range creds {
		servers = append(servers, s)
	}
	sort.Strings(servers)
	for _, s := range servers {
		c := creds[s]
		data, err := json.Marshal(map[string]string{"ServerURL": s, "Username": c.Username, "Secret": c.Secret})
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s) printf '%%s\\n' %s ;;\n", shellQuote(s), shellQuote(string(data)))
	}
	b.WriteString("*) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n")
	return os.WriteFile(filepath.Join(dir, "docker-credential-"+name), []byte(b.String()), 0o755)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
