package oras

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	"github.com/docker/cli/cli/config/types"
	"github.com/docker/docker-credential-helpers/client"
	helpercreds "github.com/docker/docker-credential-helpers/credentials"
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

// DefaultCredentialHelperTimeout bounds a run of a docker credential
// helper (RegistryOptions.CredentialHelperTimeout of
// DefaultRegistryOptions).
const DefaultCredentialHelperTimeout = 30 * time.Second

// helperWaitDelay is how long a credential helper's output pipes may stay
// open after it exited or was killed (a child that keeps them).
const helperWaitDelay = 2 * time.Second

// credentialStore reads credentials from docker's configuration (auths,
// credsStore, credHelpers, DOCKER_AUTH_CONFIG) once per host, as docker's
// configfile does, but runs credential helpers itself: under the caller's
// context and a time limit, in a process group of their own that is killed
// as a whole when the limit passes or every caller gave up.
//
// References: decisions.md D5.
type credentialStore struct {
	dir           string
	debugf        func(format string, args ...any)
	helperTimeout time.Duration

	loadOnce sync.Once
	cfg      *configfile.ConfigFile
	cfgErr   error

	mu      sync.Mutex
	entries map[string]*flight[auth.Credential]
}

func newCredentialStore(dir string, helperTimeout time.Duration, debugf func(string, ...any)) *credentialStore {
	if helperTimeout <= 0 {
		helperTimeout = DefaultCredentialHelperTimeout
	}
	if debugf == nil {
		debugf = func(string, ...any) {}
	}
	return &credentialStore{dir: dir, debugf: debugf, helperTimeout: helperTimeout, entries: map[string]*flight[auth.Credential]{}}
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
// none). A credential helper runs at most once per host (concurrent
// callers share the run); a caller returns when its context ends.
func (s *credentialStore) lookup(ctx context.Context, host string) (auth.Credential, error) {
	key := credentialKey(host)
	s.mu.Lock()
	f, ok := s.entries[key]
	if !ok {
		f = &flight[auth.Credential]{}
		s.entries[key] = f
	}
	s.mu.Unlock()
	return f.do(ctx, func(ctx context.Context) (auth.Credential, error) { return s.read(ctx, key) },
		func(c auth.Credential, _ error) (auth.Credential, bool) { return c, true })
}

func (s *credentialStore) read(ctx context.Context, key string) (auth.Credential, error) {
	cfg, err := s.config()
	if err != nil {
		return auth.EmptyCredential, err
	}
	acKey := dockerConfigKey(key)
	// As docker's configfile: a credHelpers entry (even empty) wins over
	// credsStore.
	helper, ok := cfg.CredentialHelpers[acKey]
	if !ok {
		helper = cfg.CredentialsStore
	}
	var (
		ac     types.AuthConfig
		source string
	)
	switch {
	case helper == "":
		source = "docker config " + cfg.Filename
		if ac, err = cfg.GetAuthConfig(key); err != nil {
			return auth.EmptyCredential, fmt.Errorf("read credentials for %s from %s: %w", key, source, err)
		}
	default:
		if env, found := s.envAuthConfig(acKey); found {
			ac, source = env, configfile.DockerEnvConfigKey
			break
		}
		source = "credential helper docker-credential-" + helper
		if ac, err = s.runHelper(ctx, cfg, helper, acKey); err != nil {
			return auth.EmptyCredential, fmt.Errorf("read credentials for %s from %s: %w", key, source, err)
		}
	}
	cred := auth.Credential{
		Username:     ac.Username,
		Password:     ac.Password,
		RefreshToken: ac.IdentityToken,
		AccessToken:  ac.RegistryToken,
	}
	s.debugf("credentials for %s: %s from %s", key, credentialKinds(cred), source)
	return cred, nil
}

// credentialKinds names what cred holds, never its values.
func credentialKinds(cred auth.Credential) string {
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
	if len(kinds) == 0 {
		return "none"
	}
	return strings.Join(kinds, ", ")
}

// runHelper reads the credentials of acKey as docker's native store does
// (the file's entry, overridden by the helper's answer; "<token>" as the
// user name means an identity token), running the helper with `get`
// under ctx and the helper time limit.
func (s *credentialStore) runHelper(ctx context.Context, cfg *configfile.ConfigFile, helper, acKey string) (types.AuthConfig, error) {
	ac, _ := credentials.NewFileStore(cfg).Get(acKey)
	hctx, cancel := context.WithTimeoutCause(ctx, s.helperTimeout, errHelperTimeout)
	defer cancel()
	creds, err := client.Get(helperProgram(hctx, "docker-credential-"+helper), acKey)
	switch {
	case hctx.Err() != nil && errors.Is(context.Cause(hctx), errHelperTimeout):
		return ac, fmt.Errorf("docker-credential-%s did not answer within %s", helper, s.helperTimeout)
	case ctx.Err() != nil:
		return ac, context.Cause(ctx)
	case helpercreds.IsErrCredentialsNotFound(err):
		ac.Username, ac.Password, ac.IdentityToken = "", "", ""
		return ac, nil
	case err != nil:
		// The helper's own message names the helper and never the secret.
		return ac, err
	}
	if creds.Username == "<token>" {
		ac.Username, ac.Password, ac.IdentityToken = "", "", creds.Secret
	} else {
		ac.Username, ac.Password, ac.IdentityToken = creds.Username, creds.Secret, ""
	}
	return ac, nil
}

var errHelperTimeout = errors.New("credential helper timeout")

// helperProgram returns a client.ProgramFunc running command under ctx in
// a process group of its own, killed as a whole when ctx ends.
func helperProgram(ctx context.Context, command string) client.ProgramFunc {
	return func(args ...string) client.Program {
		cmd := exec.CommandContext(ctx, command, args...)
		ownProcessGroup(cmd)
		cmd.WaitDelay = helperWaitDelay
		return &program{cmd: cmd}
	}
}

// program is a client.Program over exec.Cmd.
type program struct{ cmd *exec.Cmd }

func (p *program) Input(in io.Reader) { p.cmd.Stdin = in }

func (p *program) Output() ([]byte, error) {
	out, err := p.cmd.Output()
	if errors.Is(err, exec.ErrWaitDelay) && p.cmd.ProcessState != nil && p.cmd.ProcessState.Success() {
		// The helper answered and exited; a child of it kept the pipe.
		err = nil
	}
	return out, err
}

// envAuthConfig returns the DOCKER_AUTH_CONFIG entry for acKey, as
// docker's configfile reads it (which it does before any helper).
func (s *credentialStore) envAuthConfig(acKey string) (types.AuthConfig, bool) {
	v := os.Getenv(configfile.DockerEnvConfigKey)
	if v == "" {
		return types.AuthConfig{}, false
	}
	var env struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal([]byte(v), &env); err != nil {
		s.debugf("ignoring %s: %v", configfile.DockerEnvConfigKey, err)
		return types.AuthConfig{}, false
	}
	e, ok := env.Auths[acKey]
	if !ok {
		return types.AuthConfig{}, false
	}
	decoded, err := base64.StdEncoding.DecodeString(e.Auth)
	user, pass, found := strings.Cut(string(decoded), ":")
	if err != nil || !found || user == "" {
		s.debugf("ignoring %s: invalid auth for %s", configfile.DockerEnvConfigKey, acKey)
		return types.AuthConfig{}, false
	}
	return types.AuthConfig{Username: user, Password: strings.Trim(pass, "\x00"), ServerAddress: acKey}, true
}

// dockerConfigKey mirrors docker's own key normalisation (configfile's
// getAuthConfigKey).
func dockerConfigKey(key string) string {
	if key == "docker.io" {
		return "https://index.docker.io/v1/"
	}
	return key
}

// credentialFunc returns the auth.CredentialFunc of the registry host: only
// host (or its Docker Hub aliases) gets credentials. oras' auth client
// sends them to that host and, for a token, to the realm of that host's
// challenge, as docker does.
func (s *credentialStore) credentialFunc(host string) auth.CredentialFunc {
	return func(ctx context.Context, hostport string) (auth.Credential, error) {
		if !sameRegistry(hostport, host) {
			return auth.EmptyCredential, nil
		}
		return s.lookup(ctx, host)
	}
}
