package oras

import (
	"io"
	"net/http"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

func TestIsHarborChecksThePong(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        bool
	}{
		{"harbor", http.StatusOK, "text/plain", "Pong", true},
		{"harbor with a newline", http.StatusOK, "text/plain; charset=utf-8", "Pong\n", true},
		{"pong as a JSON string", http.StatusOK, "application/json", `"Pong"`, true},
		{"a catch-all web server", http.StatusOK, "text/html", "<!DOCTYPE html><html><body>welcome</body></html>", false},
		{"an empty 200", http.StatusOK, "", "", false},
		{"another API's ping", http.StatusOK, "application/json", `{"status":"ok"}`, false},
		{"404", http.StatusNotFound, "text/plain", "404 page not found", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := startRegistry(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != "/api/v2.0/ping" {
						next.ServeHTTP(w, r)
						return
					}
					if tt.contentType != "" {
						w.Header().Set("Content-Type", tt.contentType)
					}
					w.WriteHeader(tt.status)
					_, _ = io.WriteString(w, tt.body)
				})
			})
			opts, _ := testOptions(t)
			got, err := mustRegistry(t, reg.Host(), opts).IsHarbor(testContext(t))
			if err != nil || got != tt.want {
				t.Fatalf("IsHarbor = %t, %v; want %t", got, err, tt.want)
			}
		})
	}

	t.Run("the Harbor emulation", func(t *testing.T) {
		h := registrytest.NewHarbor(nil)
		reg := startRegistry(t, h.Wrap)
		opts, _ := testOptions(t)
		if got, err := mustRegistry(t, reg.Host(), opts).IsHarbor(testContext(t)); err != nil || !got {
			t.Fatalf("IsHarbor = %t, %v; want true", got, err)
		}
	})
}
