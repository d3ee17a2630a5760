package loader_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
)

func validate(t *testing.T, opts loader.Options) *loader.Result {
	t.Helper()
	res, err := loader.Validate(context.Background(), opts)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	return res
}

// registryDo sends one request to the test registry and checks its status.
func registryDo(t *testing.T, reg *registrytest.Registry, method, path, contentType string, body []byte, want int) {
	t.Helper()
	req, err := http.NewRequest(method, reg.Server.URL+path, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := reg.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d", method, path, resp.Status, want)
	}
}

func TestValidate(t *testing.T) {
	archive, state := basicArchive(t)
	const app00 = "127.0.0.1:5557/library/app00:v1.0.0"
	var (
		app00index = digestOf(t, state, "library/app00:v1.0.0")
		app00arm64 = digestOf(t, state, "library/app00:v1.0.0-linux-arm64v8")
		app00amd64 = digestOf(t, state, "library/app00:v1.0.0-linux-amd64")
	)
	tests := []struct {
		name   string
		damage func(t *testing.T, reg *registrytest.Registry)
		failed []string
		reason string
	}{
		{name: "complete load passes"},
		{
			name: "platform manifest deleted",
			damage: func(t *testing.T, reg *registrytest.Registry) {
				registryDo(t, reg, http.MethodDelete, "/v2/library/app00/manifests/"+app00arm64, "", nil, http.StatusAccepted)
			},
			failed: []string{app00},
			reason: app00arm64,
		},
		{
			name: "main tag re-pointed",
			damage: func(t *testing.T, reg *registrytest.Registry) {
				// the tag now holds the amd64 manifest alone
				body, mediaType, err := registrytest.Manifest(reg.Client(), reg.Server.URL, "library/app00", app00amd64)
				if err != nil {
					t.Fatal(err)
				}
				registryDo(t, reg, http.MethodPut, "/v2/library/app00/manifests/v1.0.0", mediaType, body, http.StatusCreated)
			},
			failed: []string{app00},
			reason: "is not in the destination index",
		},
		{
			name: "image missing entirely",
			damage: func(t *testing.T, reg *registrytest.Registry) {
				registryDo(t, reg, http.MethodDelete, "/v2/library/app00/manifests/"+app00index, "", nil, http.StatusAccepted)
			},
			failed: []string{app00},
			reason: "does not exists in destination registry server",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registrytest.MustStart(t, registrytest.Options{})
			if res := load(t, testOptions(t, archive, reg.Host())); len(res.Failed) != 0 {
				t.Fatalf("load failed: %v", res.Failed)
			}
			if tt.damage != nil {
				tt.damage(t, reg)
			}
			res := validate(t, testOptions(t, archive, reg.Host()))
			if strings.Join(res.FailedKeys(), ",") != strings.Join(tt.failed, ",") {
				t.Fatalf("failed = %v, want %v", res.Failed, tt.failed)
			}
			for img, ir := range res.Images {
				if img.Source == app00 && tt.reason != "" {
					if ir.Err == nil || !strings.Contains(ir.Err.Error(), tt.reason) {
						t.Errorf("error %v does not mention %q", ir.Err, tt.reason)
					}
				}
			}
		})
	}
}
