package meshsim

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

var (
	stableKey = ServiceKey{"helloworld", "helloworld"}
	canaryKey = ServiceKey{"helloworld", "helloworld-canary"}
)

func split(stable, canary int) Weights {
	return Weights{Route: "helloworld", Destinations: []WeightedService{
		{Host: "helloworld", Service: stableKey, Weight: stable},
		{Host: "helloworld-canary", Service: canaryKey, Weight: canary},
	}}
}

func TestPickSplitsByWeight(t *testing.T) {
	t.Parallel()
	endpoints := map[ServiceKey][]Endpoint{
		stableKey: {{Cluster: "argo-rollout1", Pod: "s1", Service: "helloworld"}},
		canaryKey: {{Cluster: "argo-rollout2", Pod: "c1", Service: "helloworld-canary"}},
	}
	tests := []struct {
		name           string
		stable, canary int
	}{
		{"90/10", 90, 10},
		{"50/50", 50, 50},
		{"0/100", 0, 100},
		{"100/0", 100, 0},
		{"unnormalised 3/1", 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rng := seeded(1)
			const n = 10000
			canary := 0
			for range n {
				c, err := Pick(rng, split(tt.stable, tt.canary), endpoints)
				if err != nil {
					t.Fatalf("Pick() error: %v", err)
				}
				if c.Endpoint.Service != c.Destination.Service.Name {
					t.Fatalf("picked endpoint %+v for destination %+v", c.Endpoint, c.Destination)
				}
				if c.Destination.Service == canaryKey {
					canary++
				}
			}
			want := float64(tt.canary) / float64(tt.stable+tt.canary)
			got := float64(canary) / n
			if math.Abs(got-want) > 0.02 {
				t.Fatalf("canary share = %.4f, want %.2f ± 0.02", got, want)
			}
			// A zero weight must never be picked, not merely rarely.
			if (tt.canary == 0 && canary != 0) || (tt.stable == 0 && canary != n) {
				t.Fatalf("a zero-weight destination got traffic: canary %d of %d", canary, n)
			}
		})
	}
}

func TestPickSpreadsOverAllClusters(t *testing.T) {
	t.Parallel()
	endpoints := map[ServiceKey][]Endpoint{
		canaryKey: {
			{Cluster: "argo-rollout1", Pod: "c1"},
			{Cluster: "argo-rollout1", Pod: "c2"},
			{Cluster: "argo-rollout2", Pod: "c3"},
		},
	}
	rng := seeded(7)
	counts := map[string]int{}
	const n = 9000
	for range n {
		c, err := Pick(rng, split(0, 100), endpoints)
		if err != nil {
			t.Fatalf("Pick() error: %v", err)
		}
		counts[c.Endpoint.Pod]++
	}
	for _, pod := range []string{"c1", "c2", "c3"} {
		if share := float64(counts[pod]) / n; math.Abs(share-1.0/3) > 0.02 {
			t.Errorf("pod %s share = %.4f, want 1/3 ± 0.02 (counts %v)", pod, share, counts)
		}
	}
}

func TestPickNoHealthyUpstream(t *testing.T) {
	t.Parallel()
	// Envoy does not fall back to the other destination when the chosen
	// one is empty: all canary picks fail, all stable picks succeed.
	endpoints := map[ServiceKey][]Endpoint{stableKey: {{Pod: "s1"}}}
	rng := seeded(3)
	failed := 0
	for range 1000 {
		c, err := Pick(rng, split(50, 50), endpoints)
		switch {
		case errors.Is(err, ErrNoHealthyUpstream):
			failed++
			if c.Destination.Service != canaryKey {
				t.Fatalf("UH reported for %+v, want the canary", c.Destination)
			}
		case err != nil:
			t.Fatalf("Pick() error: %v", err)
		case c.Destination.Service != stableKey:
			t.Fatalf("Pick() succeeded for %+v without endpoints", c.Destination)
		}
	}
	if failed < 400 || failed > 600 {
		t.Fatalf("%d of 1000 picks failed, want about half", failed)
	}
}

func TestPickNoRoute(t *testing.T) {
	t.Parallel()
	for _, w := range []Weights{{}, split(0, 0)} {
		if _, err := Pick(seeded(1), w, nil); !errors.Is(err, ErrNoRoute) {
			t.Errorf("Pick(%+v) error = %v, want ErrNoRoute", w, err)
		}
	}
}

func TestLockedRandFails(t *testing.T) {
	t.Parallel()
	l := NewLockedRand(seeded(11))
	const n = 10000
	failed := 0
	for range n {
		if l.Fails(0.3) {
			failed++
		}
	}
	if share := float64(failed) / n; math.Abs(share-0.3) > 0.02 {
		t.Fatalf("failure share = %.4f, want 0.30 ± 0.02", share)
	}
	for range 100 {
		if l.Fails(0) || !l.Fails(1) {
			t.Fatal("rates 0 and 1 must be exact")
		}
	}
}
