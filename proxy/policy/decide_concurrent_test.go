package policy

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"
)

// TestDecideConcurrentWithDeadlines decides from several goroutines at once, with and without a
// deadline on the context, as the proxy does: every evaluation shares the Prepared's read
// transaction, and a context with a deadline is watched without a goroutine of its own.
// Run with -race.
func TestDecideConcurrentWithDeadlines(t *testing.T) {
	p := compileStarter(t)
	cases := decisionCases()
	want := make([]Decision, len(cases))
	for i, c := range cases {
		d, err := p.Decide(context.Background(), c.Input)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		want[i] = d
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i, c := range cases {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if (g+i)%2 == 0 {
					ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
				}
				d, err := p.Decide(ctx, c.Input)
				cancel()
				if err != nil || !reflect.DeepEqual(d, want[i]) {
					t.Errorf("goroutine %d, %s: %+v, %v; want %+v", g, c.Name, d, err, want[i])
				}
			}
		})
	}
	wg.Wait()
}
