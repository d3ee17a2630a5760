package oras

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// dockerHubHosts are the names under which Docker Hub is reached; docker
// keeps their credentials under "https://index.docker.io/v1/".
var dockerHubHosts = map[string]bool{
	"docker.io":            true,
	"index.docker.io":      true,
	"registry-1.docker.io": true,
}

// credentialKey returns the name docker's configuration knows host by:
// Docker Hub's aliases become "docker.io", which docker's config package
// maps to "https://index.docker.io/v1/".
func credentialKey(host string) string {
	if dockerHubHosts[strings.ToLower(host)] {
		return "docker.io"
	}
	return host
}

// sameRegistry reports whether a and b name the same registry.
func sameRegistry(a, b string) bool {
	return strings.EqualFold(credentialKey(a), credentialKey(b))
}

// credentialStore reads credentials from docker's configuration (auths,
// credsStore, credHelpers) once per host.
//
// References: decisions.md D5.
type credentialStore struct {
	dir    string
	debugf func(format string, args ...any)

	loadOnce sync.Once
	cfg      *configfile.ConfigFile
	cfgErr   error

	mu      sync.Mutex
	entries map[string]*credentialEntry
}

type credentialEntry struct {
	once sync.Once
	cred auth.Credential
	err  error
}

func newCredentialStore(dir string, debugf func(string, ...any)) *credentialStore {
	return &credentialStore{dir: dir, debugf: debugf, entries: map[string]*credentialEntry{}}
}

func (s *credentialStore) config() (*configfile.ConfigFile, error) {
	s.loadOnce.Do(func() {
		dir := s.dir
		if dir == "" {
			dir = config.Dir()
		}
		s.cfg, s.cfgErr = config.Load(dir)
		if s.cfgErr != nil {
			s.cfgErr = fmt.Errorf("read docker configuration: %w", s.cfgErr)
		}
	})
	return s.cfg, s.cfgErr
}

// lookup returns the credential docker has for host (EmptyCredential when
// none). A credential helper runs at most once per host.
func (s *credentialStore) lookup(host string) (auth.Credential, error) {
	key := credentialKey(host)
	s.mu.Lock()
	e, ok := s.entries[key]
	if !ok {
		e = &credentialEntry{}
		s.entries[key] = e
	}
	s.mu.Unlock()
	e.once.Do(func() { e.cred, e.err = s.read(key) })
	return e.cred, e.err
}

func (s *credentialStore) read(key string) (auth.Credential, error) {
	cfg, err := s.config()
	if err != nil {
		return auth.EmptyCredential, err
	}
	source := "docker config " + cfg.Filename
	if h, ok := cfg.CredentialHelpers[dockerConfigKey(key)]; ok && h != "" {
		source = "credential helper docker-credential-" + h
	} else if cfg.CredentialsStore != "" {
		source = "credential store docker-credential-" + cfg.CredentialsStore
	}
	ac, err := cfg.GetAuthConfig(key)
	if err != nil {
		// The helper's own message names the helper and never the secret.
		return auth.EmptyCredential, fmt.Errorf("read credentials for %s from %s: %w", key, source, err)
	}
	cred := auth.Credential{
		Username:     ac.Username,
		Password:     ac.Password,
		RefreshToken: ac.IdentityToken,
		AccessToken:  ac.RegistryToken,
	}
	if s.debugf != nil {
		switch {
		case cred == auth.EmptyCredential:
			s.debugf("credentials for %s: none in %s", key, source)
		default:
			var kinds []string
			if cred.Username != "" {
				kinds = append(kinds, "username")
			}
			if cred.Password != "" {
				kinds = append(kinds, "password")
			}
			if cred.RefreshToken != "" {
				kinds = append(kinds, "identity token")
			}
			if cred.AccessToken != "" {
				kinds = append(kinds, "registry token")
			}
			s.debugf("credentials for %s: %s from %s", key, strings.Join(kinds, ", "), source)
		}
	}
	return cred, nil
}

// dockerConfigKey mirrors docker's own key normalisation (configfile's
// getAuthConfigKey) for reading credHelpers.
func dockerConfigKey(key string) string {
	if key == "docker.io" {
		return "https://index.docker.io/v1/"
	}
	return key
}

// credentialFunc returns the auth.CredentialFunc of the registry host: only
// host (or its Docker Hub aliases) gets credentials.
func (s *credentialStore) credentialFunc(host string) auth.CredentialFunc {
	return func(_ context.Context, hostport string) (auth.Credential, error) {
		if !sameRegistry(hostport, host) {
			return auth.EmptyCredential, nil
		}
		return s.lookup(host)
	}
}
