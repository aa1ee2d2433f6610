package policy

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// refusingBundle compiles a tested bundle whose decision refuses messages to country and allows the
// rest; extra is added to the decision document as is.
func refusingBundle(t *testing.T, country, extra string) *Prepared {
	t.Helper()
	b, err := NewBundle(map[string]string{"decision.rego": `package smsproxy

reasons := [r |
	input.message.country == "` + country + `"
	r := {"code": "country_not_served", "message": "Not served.", "rule": "smsproxy.test"}
]

decision := {"allow": count(reasons) == 0, "reasons": reasons, "limits": [], "route": {"providers": []}, "masks": [], "obligations": []` + extra + `}

test_another_country_is_allowed if {
	decision.allow with input as {"message": {"country": "ZZ"}}
}
`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDecisionRevisionSurvivesSwap swaps two bundles that decide differently while several goroutines
// decide: every decision must name the revision of the bundle whose rules made it, however the swaps
// fall, so an audit record built from the decision alone is never torn. Run with -race.
func TestDecisionRevisionSurvivesSwap(t *testing.T) {
	refusesSG, refusesUS := refusingBundle(t, "SG", ""), refusingBundle(t, "US", "")
	if refusesSG.Revision() == refusesUS.Revision() {
		t.Fatal("the two bundles share a revision")
	}
	e := NewEngine(refusesSG, slog.New(slog.DiscardHandler))
	in := &Input{App: "pay", Message: MessageInput{Country: "SG"}}

	var stop atomic.Bool
	var fromSG, fromUS, torn atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			if i%2 == 0 {
				e.Swap(refusesUS)
			} else {
				e.Swap(refusesSG)
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				d, err := e.Decide(context.Background(), in)
				if err != nil {
					t.Error(err)
					return
				}
				// SG is refused only by refusesSG, so Allow says which bundle decided.
				switch {
				case !d.Allow && d.Revision == refusesSG.Revision():
					fromSG.Add(1)
				case d.Allow && d.Revision == refusesUS.Revision():
					fromUS.Add(1)
				default:
					if torn.Add(1) <= 3 {
						t.Errorf("allow=%v with revision %q; refusing SG is %s, refusing US is %s",
							d.Allow, d.Revision, refusesSG.Revision(), refusesUS.Revision())
					}
				}
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for (fromSG.Load() < 1000 || fromUS.Load() < 1000) && torn.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if torn.Load() > 0 {
		t.Fatalf("%d decisions named a revision that did not make them (%d from SG-refusing, %d from US-refusing)",
			torn.Load(), fromSG.Load(), fromUS.Load())
	}
	if fromSG.Load() == 0 || fromUS.Load() == 0 {
		t.Fatalf("the swaps were not seen while deciding: %d from SG-refusing, %d from US-refusing", fromSG.Load(), fromUS.Load())
	}
}

// TestDecisionRevisionIsNotInTheDocument checks that Revision comes from the bundle, never from the
// decision document, and that it stays out of the decision's JSON (the golden file's shape).
func TestDecisionRevisionIsNotInTheDocument(t *testing.T) {
	p := refusingBundle(t, "SG", `, "revision": "forged", "Revision": "forged"`)
	in := &Input{Message: MessageInput{Country: "US"}}
	d, err := p.Decide(context.Background(), in)
	if err != nil || !d.Allow || d.Revision != p.Revision() {
		t.Fatalf("Decide = %+v, %v; want allowed with revision %s", d, err, p.Revision())
	}
	ev, err := Eval(context.Background(), p, in, ExplainNotes)
	if err != nil || ev.Decision.Revision != p.Revision() || ev.Revision != p.Revision() {
		t.Fatalf("Eval = %+v, %v; want revision %s", ev, err, p.Revision())
	}
	b, err := json.Marshal(d)
	if err != nil || strings.Contains(strings.ToLower(string(b)), "revision") {
		t.Fatalf("the decision's JSON holds the revision: %s, %v", b, err)
	}
	var back Decision
	if err := json.Unmarshal([]byte(`{"allow": true, "revision": "forged"}`), &back); err != nil || back.Revision != "" {
		t.Fatalf("decoding JSON read the revision: %+v, %v", back, err)
	}
}
