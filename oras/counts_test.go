package oras

import (
	"context"
	"maps"
	"sync"
	"testing"
)

func TestRequestCounts(t *testing.T) {
	tests := []struct {
		name    string
		methods []string
		want    map[string]int
	}{
		{"none", nil, nil},
		{"one of each known", []string{"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"}, map[string]int{"GET": 1, "HEAD": 1, "PUT": 1, "POST": 1, "PATCH": 1, "DELETE": 1}},
		{"unknown methods count together", []string{"OPTIONS", "TRACE", "HEAD"}, map[string]int{"OTHER": 2, "HEAD": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c RequestCounts
			ctx := CountRequests(context.Background(), &c)
			var wg sync.WaitGroup
			for range 10 {
				wg.Go(func() {
					for _, m := range tt.methods {
						countRequest(ctx, m)
					}
				})
			}
			wg.Wait()
			countRequest(context.Background(), "GET") // not counted: no counts in the context
			want := maps.Clone(tt.want)
			for m := range want {
				want[m] *= 10
			}
			if got := c.Snapshot().ByMethod(); !maps.Equal(got, want) {
				t.Errorf("ByMethod() = %v; want %v", got, want)
			}
		})
	}
}
