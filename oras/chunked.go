package oras

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

const (
	// DefaultChunkSize is the chunk size of uploads after the first 413
	// (or half the refused size when that is smaller).
	DefaultChunkSize = 64 << 20
	// MinChunkSize is the smallest chunk: a registry that refuses it as
	// too large fails the upload.
	MinChunkSize = 64 << 10
)

// smallerChunks records that the registry refused a body of refused bytes
// as too large (413) and returns the chunk size to use from now on (the
// Registry keeps it), or 0 when it would be under MinChunkSize.
func (r *Registry) smallerChunks(refused int64) int64 {
	for {
		cur := r.chunkSize.Load()
		if cur > 0 && cur < refused {
			return cur // another upload already went lower
		}
		next := min(DefaultChunkSize, refused/2)
		if next < MinChunkSize {
			return 0
		}
		if r.chunkSize.CompareAndSwap(cur, next) {
			r.debugf("registry %s: a body of %d bytes was refused as too large; uploading in chunks of %d bytes", r.host, refused, next)
			return next
		}
	}
}

// tooLarge handles a 413 to a body of size bytes: errRetryNow with smaller
// chunks, or a final error when no smaller chunk is allowed.
func (r *Registry) tooLarge(err error, size int64) error {
	if r.smallerChunks(size) == 0 {
		return newError(errFinal, err, fmt.Sprintf("registry %s refuses a body of %d bytes as too large (413): its limit is below the smallest chunk (%d bytes)",
			r.host, size, int64(MinChunkSize)))
	}
	return newError(errRetryNow, err, describe(err))
}

// chunkedUpload is the state of a chunked upload across attempts: the
// upload session (its latest Location), the offset the registry confirmed
// and the authorization of the session's requests.
//
// References: OCI distribution-spec v1.1 "Pushing a blob in chunks"
// (PATCH with Content-Range, 416 and GET for the upload's Range), "Pushing
// blobs" (POST, final PUT with ?digest=), "Mounting a blob from another
// repository".
type chunkedUpload struct {
	location  *url.URL
	offset    int64
	authz     string
	refreshed int64 // offset of the last authorization refresh, or -1
}

// pushChunked makes one attempt of a chunked upload of desc (mounted from
// from when not empty), resuming the session of st when the registry still
// knows it. It reports whether the blob was mounted.
func (r *Repository) pushChunked(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error), from string, st *chunkedUpload) (mounted bool, err error) {
	ctx = auth.AppendRepositoryScope(ctx, r.ref, auth.ActionPull, auth.ActionPush)
	if from != "" {
		src := r.ref
		src.Repository = from
		ctx = auth.AppendRepositoryScope(ctx, src, auth.ActionPull)
	}
	if st.location != nil {
		if err := r.uploadStatus(ctx, st); err != nil {
			if ctx.Err() != nil {
				return false, err
			}
			r.reg.debugf("push blob %s to %s: upload session lost (%s), starting again", desc.Digest, r.name, describe(err))
			st.location = nil
		}
	}
	if st.location == nil {
		if mounted, err := r.startUpload(ctx, desc, from, st); err != nil || mounted {
			return mounted, err
		}
	}

	body := newUploadBody(desc, open)
	defer body.Close()
	if st.offset > 0 {
		// The source is a stream: read again what the registry has.
		if _, err := io.CopyN(io.Discard, body, st.offset); err != nil {
			return false, err
		}
	}
	for st.offset < desc.Size {
		n := min(r.reg.chunkSize.Load(), desc.Size-st.offset)
		var rd io.Reader = io.LimitReader(body, n)
		if st.offset+n == desc.Size {
			rd = body // the last chunk reads to the end, where the bytes are verified
		}
		if err := r.patchChunk(ctx, st, rd, n); err != nil {
			if cerr := body.contentErr(); cerr != nil {
				return false, cerr
			}
			return false, err
		}
	}

	u := *st.location
	q := u.Query()
	q.Set("digest", desc.Digest.String())
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), nil)
	if err != nil {
		return false, err
	}
	resp, err := r.reg.upload.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return false, parseErrorResponse(resp)
	}
	st.location = nil
	return false, nil
}

// startUpload opens an upload session (POST, with a mount request when
// from is not empty). It reports whether the registry mounted the blob
// instead (201).
func (r *Repository) startUpload(ctx context.Context, desc ocispec.Descriptor, from string, st *chunkedUpload) (mounted bool, err error) {
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/uploads/", r.reg.schemeName(), r.reg.endpoint, r.name)
	if from != "" {
		u += "?" + url.Values{"mount": {desc.Digest.String()}, "from": {from}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return false, err
	}
	resp, err := r.reg.upload.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		if from != "" {
			return true, nil
		}
	case http.StatusAccepted:
		loc, err := uploadLocation(resp)
		if err != nil {
			return false, err
		}
		st.location, st.offset, st.authz, st.refreshed = loc, 0, resp.Request.Header.Get("Authorization"), -1
		return false, nil
	}
	return false, parseErrorResponse(resp)
}

// uploadStatus asks the registry how much of the session it has (GET:
// 204 with Range).
func (r *Repository) uploadStatus(ctx context.Context, st *chunkedUpload) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.location.String(), nil)
	if err != nil {
		return err
	}
	resp, err := r.reg.upload.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return parseErrorResponse(resp)
	}
	offset, err := rangeEnd(resp.Header.Get("Range"))
	if err != nil {
		return err
	}
	if loc, err := uploadLocation(resp); err == nil {
		st.location = loc
	}
	st.offset = offset
	if a := resp.Request.Header.Get("Authorization"); a != "" {
		st.authz = a
	}
	return nil
}

// patchChunk sends n bytes of rd at st.offset, and moves st on.
func (r *Repository) patchChunk(ctx context.Context, st *chunkedUpload, rd io.Reader, n int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, st.location.String(), io.NopCloser(rd))
	if err != nil {
		return err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", st.offset, st.offset+n-1))
	if st.authz != "" {
		req.Header.Set("Authorization", st.authz)
	}
	resp, err := r.reg.upload.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusAccepted:
		loc, err := uploadLocation(resp)
		if err != nil {
			return err
		}
		st.location = loc
		st.offset += n
		return nil
	case http.StatusRequestEntityTooLarge:
		return r.reg.tooLarge(parseErrorResponse(resp), n)
	case http.StatusUnauthorized:
		if st.authz != "" && st.refreshed != st.offset {
			// The session's token expired: the next attempt asks for
			// the upload's status with a fresh one.
			st.authz, st.refreshed = "", st.offset
			return newError(errRetryNow, parseErrorResponse(resp), "authorization expired during a chunked upload")
		}
	}
	return parseErrorResponse(resp)
}

// uploadLocation returns the Location of an upload answer, resolved
// against the request, refusing one on another origin (credentials follow
// it) or that leaves HTTPS.
func uploadLocation(resp *http.Response) (*url.URL, error) {
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("upload answer %d has no Location", resp.StatusCode)
	}
	if !sameOrigin(loc, resp.Request.URL) {
		return nil, newError(errFinal, nil, fmt.Sprintf("blob upload Location %s://%s is not on the registry's origin %s://%s",
			loc.Scheme, loc.Host, resp.Request.URL.Scheme, resp.Request.URL.Host))
	}
	return loc, nil
}

// rangeEnd returns the offset after a "0-<end>" Range header of an upload
// status ("0-0", as distribution writes for an empty upload, is 0).
func rangeEnd(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	start, end, ok := strings.Cut(strings.TrimPrefix(v, "bytes="), "-")
	s, err1 := strconv.ParseInt(start, 10, 64)
	e, err2 := strconv.ParseInt(end, 10, 64)
	if !ok || err1 != nil || err2 != nil || s != 0 || e < 0 {
		return 0, fmt.Errorf("upload status has an invalid Range %q", v)
	}
	if e == 0 {
		return 0, nil
	}
	return e + 1, nil
}

// parseErrorResponse reads a registry error answer (as oras does) into an
// *errcode.ErrorResponse, without the URL's query (upload state).
func parseErrorResponse(resp *http.Response) error {
	u := *resp.Request.URL
	u.RawQuery = ""
	er := &errcode.ErrorResponse{Method: resp.Request.Method, URL: &u, StatusCode: resp.StatusCode}
	var body struct {
		Errors errcode.Errors `json:"errors"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<10)).Decode(&body); err == nil {
		er.Errors = body.Errors
	}
	return er
}
