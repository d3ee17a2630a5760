package oras

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// IsHarbor reports whether the registry is Harbor v2: GET /api/v2.0/ping
// answers 200 with the body "Pong" (Harbor's ping handler, text/plain;
// a JSON string "Pong" is accepted too). It uses the registry's settled
// scheme and transport; any other answer means "not Harbor", a transport
// failure is an error. The answer is kept: one request per Registry.
//
// References: hangar-load.md 2.6, 5.15; Harbor's API
// (src/server/v2.0/handler/ping.go: GetPing answers "Pong").
func (r *Registry) IsHarbor(ctx context.Context) (bool, error) {
	return r.harbor.do(ctx, r.detectHarbor, func(v bool, err error) (bool, bool) { return v, err == nil })
}

func (r *Registry) detectHarbor(ctx context.Context) (bool, error) {
	if _, _, err := r.scheme(ctx); err != nil {
		return false, err
	}
	p, err := r.get(ctx, r.schemeName(), "/api/v2.0/ping")
	if err != nil {
		if ctx.Err() != nil {
			return false, context.Cause(ctx)
		}
		return false, fmt.Errorf("detect harbor: %w", r.connError(err))
	}
	body := strings.TrimSpace(string(p.body))
	r.debugf("registry %s: GET /api/v2.0/ping answered %d (%d bytes)", r.host, p.status, len(p.body))
	return p.status == http.StatusOK && (body == "Pong" || body == `"Pong"`), nil
}

// harborProject is the body of Harbor's project creation; the field order
// and the string "false" are Hangar's.
type harborProject struct {
	ProjectName string `json:"project_name"`
	Metadata    struct {
		Public string `json:"public"`
	} `json:"metadata"`
}

// EnsureHarborProject creates the Harbor project (private) unless it
// exists, and reports whether it was created. It authenticates with
// docker's username and password for the registry (basic auth, as Harbor's
// API wants); an identity token alone is refused with a clear error.
//
// HEAD /api/v2.0/projects?project_name=<p>: 200 exists, 404 create with
// POST /api/v2.0/projects {"project_name":"<p>","metadata":{"public":"false"}};
// 201 created, 409 already there.
//
// References: hangar-load.md 2.6, 5.15; decisions.md D4, D5.
func (r *Registry) EnsureHarborProject(ctx context.Context, project string) (created bool, err error) {
	exists, cred, err := r.harborProject(ctx, project)
	if err != nil || exists {
		return false, err
	}
	op := fmt.Sprintf("harbor project %q", project)
	base := r.harborProjectsURL()

	var body harborProject
	body.ProjectName = project
	body.Metadata.Public = "false"
	data, err := json.Marshal(body)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	status, msg, err := r.harborDo(ctx, http.MethodPost, base, data, cred)
	if err != nil {
		return false, r.mapError(ctx, "create "+op, err, false)
	}
	switch status {
	case http.StatusCreated:
		r.debugf("created harbor project %q", project)
		// Harbor refuses a token issued before the project existed.
		r.tokens.forgetTokens()
		return true, nil
	case http.StatusConflict:
		r.debugf("harbor project %q already exists (409)", project)
		return false, nil
	default:
		return false, r.harborStatusError("create "+op, status, msg, cred)
	}
}

// HarborProjectExists reports whether a Harbor project exists: true where
// the shared token of one of its repositories (see ShareTokens: the login
// check's, or one fetched for its group, a token request for up to
// MaxSharedScopes repositories) grants push to it, else as one HEAD of the
// projects API with docker's credentials says, as EnsureHarborProject
// does before it creates one.
func (r *Registry) HarborProjectExists(ctx context.Context, project string) (bool, error) {
	if r.projectGranted(ctx, project) {
		r.debugf("harbor project %q exists: the token grants push to it", project)
		return true, nil
	}
	exists, _, err := r.harborProject(ctx, project)
	return exists, err
}

// harborProject looks a project up, and returns the credentials it used.
func (r *Registry) harborProject(ctx context.Context, project string) (bool, auth.Credential, error) {
	op := fmt.Sprintf("harbor project %q", project)
	if project == "" || strings.ContainsAny(project, "/ \t\r\n?#%") {
		return false, auth.Credential{}, fmt.Errorf("%s: invalid project name", op)
	}
	if _, _, err := r.scheme(ctx); err != nil {
		return false, auth.Credential{}, err
	}
	cred, err := r.creds.lookup(ctx, r.host)
	if err != nil {
		return false, cred, fmt.Errorf("%s: %w", op, err)
	}
	if cred != auth.EmptyCredential && (cred.Username == "" || cred.Password == "") {
		return false, cred, newError(ErrUnauthorized, nil, fmt.Sprintf(
			"%s: creating harbor projects needs a username and password for %s, and docker has only a token (run `docker login %s` with a username and password)",
			op, r.host, r.host))
	}
	status, _, err := r.harborDo(ctx, http.MethodHead, r.harborProjectsURL()+"?project_name="+url.QueryEscape(project), nil, cred)
	if err != nil {
		return false, cred, r.mapError(ctx, "check "+op, err, false)
	}
	switch status {
	case http.StatusOK:
		r.debugf("harbor project %q already exists", project)
		return true, cred, nil
	case http.StatusNotFound:
		return false, cred, nil
	default:
		return false, cred, r.harborStatusError("check "+op, status, "", cred)
	}
}

// harborProjectsURL is the URL of Harbor's projects API.
func (r *Registry) harborProjectsURL() string {
	return r.schemeName() + "://" + r.endpoint + "/api/v2.0/projects"
}

// harborDo sends one Harbor API request (retried by the transport) and
// returns its status and the message of its error body, if any.
func (r *Registry) harborDo(ctx context.Context, method, u string, body []byte, cred auth.Credential) (int, string, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	r.setUserAgent(req)
	if cred.Username != "" {
		req.SetBasicAuth(cred.Username, cred.Password)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var answer struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if resp.StatusCode >= 300 && json.Unmarshal(data, &answer) == nil && len(answer.Errors) > 0 {
		return resp.StatusCode, answer.Errors[0].Message, nil
	}
	return resp.StatusCode, "", nil
}

// harborProjectMessage is Harbor's message for a request into a project
// that does not exist, which it answers with 401 UNAUTHORIZED and an empty
// challenge: "project P not found: project P not found".
var harborProjectMessage = regexp.MustCompile(`^project ([a-z0-9._-]+) not found`)

// harborMissingProject returns an error wrapping ErrNotFound that says the
// project does not exist when err is Harbor's answer for a project that
// does not exist, else nil. That answer is a 401 and must not be taken for
// refused credentials: the tag or blob asked for does not exist.
func (r *Registry) harborMissingProject(err error) error {
	var er *errcode.ErrorResponse
	if !errors.As(err, &er) || er.StatusCode != http.StatusUnauthorized {
		return nil
	}
	for _, e := range er.Errors {
		if m := harborProjectMessage.FindStringSubmatch(e.Message); m != nil && e.Code == errcode.ErrorCodeUnauthorized {
			return newError(ErrNotFound, err, fmt.Sprintf("project %s does not exist on registry %s", m[1], r.host))
		}
	}
	return nil
}

func (r *Registry) harborStatusError(op string, status int, harborMsg string, cred auth.Credential) error {
	msg := fmt.Sprintf("%s: %d %s", op, status, http.StatusText(status))
	if harborMsg != "" {
		msg += ": " + harborMsg
	}
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		if cred == auth.EmptyCredential {
			return newError(ErrLoginRequired, nil, fmt.Sprintf("%s (run `docker login %s`)", msg, r.host))
		}
		return newError(ErrUnauthorized, nil, fmt.Sprintf("%s (the credentials for %s were refused or may not create projects)", msg, r.host))
	}
	return fmt.Errorf("%s", msg)
}
