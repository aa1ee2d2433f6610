package policy

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// decideWith compiles a bundle whose decision rule is the given Rego and decides one message.
func decideWith(t *testing.T, rule string) (Decision, error) {
	t.Helper()
	b, err := NewBundle(map[string]string{"decision.rego": "package smsproxy\n\n" + rule + "\n"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(context.Background(), b)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p.Decide(context.Background(), otpSG())
}

func TestDecideRefusesIllShapedDecisions(t *testing.T) {
	cases := []struct {
		name, rule, want string
	}{
		{"undefined", `decision := x if { x := input.no_such_field }`, "undefined"},
		{"not an object", `decision := true`, "not an object"},
		{"allow missing", `decision := {"reasons": []}`, "allow"},
		{"allow as string", `decision := {"allow": "true"}`, "allow"},
		{"refusal without reason", `decision := {"allow": false}`, "without a reason"},
		{"reason without code", `decision := {"allow": false, "reasons": [{"message": "no"}]}`, "reasons[0]"},
		{"reasons not a list", `decision := {"allow": false, "reasons": "no"}`, "reasons"},
		{"limit with bad period", `decision := {"allow": true, "limits": [{"key": "app:a", "rate": 1, "period": "1 day", "code": "c", "message": "m"}]}`, "period"},
		{"limit with fractional rate", `decision := {"allow": true, "limits": [{"key": "app:a", "rate": 1.5, "period": "1s", "code": "c", "message": "m"}]}`, "rate"},
		{"limit with zero rate", `decision := {"allow": true, "limits": [{"key": "app:a", "rate": 0, "period": "1s", "code": "c", "message": "m"}]}`, "rate"},
		{"limit with window not a boolean", `decision := {"allow": true, "limits": [{"key": "otp:device:d", "rate": 3, "period": "24h", "window": "yes", "code": "c", "message": "m"}]}`, `limits[0]: "window" is a string, not a boolean`},
		{"provider not a string", `decision := {"allow": true, "route": {"providers": [1]}}`, "providers[0]"},
		{"route not an object", `decision := {"allow": true, "route": ["a"]}`, "route"},
		{"mask without style", `decision := {"allow": true, "masks": [{"field": "to"}]}`, "masks[0]"},
		{"obligation not an object", `decision := {"allow": true, "obligations": ["append_footer"]}`, "obligations[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := decideWith(t, c.rule)
			if ErrorCode(err) != CodeBadDecision {
				t.Fatalf("got %+v, %v; want %s", d, err, CodeBadDecision)
			}
			if d.Allow {
				t.Error("an ill-shaped decision allowed the message")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error does not mention %q: %v", c.want, err)
			}
		})
	}
}

func TestDecideMinimalAndSetDecisions(t *testing.T) {
	d, err := decideWith(t, `decision := {"allow": true, "route": {"providers": {"b", "a"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow || d.Reasons == nil || d.Limits == nil || d.Masks == nil || d.Obligations == nil {
		t.Errorf("lists must be empty, not nil: %+v", d)
	}
	if strings.Join(d.Route.Providers, ",") != "a,b" {
		t.Errorf("providers %v", d.Route.Providers)
	}
}

// TestDecideWindowLimit reads a limit's optional window: true for a window cap, false when absent.
func TestDecideWindowLimit(t *testing.T) {
	d, err := decideWith(t, `decision := {"allow": true, "limits": [
		{"limit": "otp_per_device", "key": "otp:device:d", "rate": 3, "period": "24h", "window": true, "code": "c", "message": "m"},
		{"key": "app:a", "rate": 5, "period": "1s", "burst": 10, "code": "c", "message": "m"},
	]}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Limit{
		{Name: "otp_per_device", Key: "otp:device:d", Rate: 3, Period: "24h", Window: true, Code: "c", Message: "m"},
		{Key: "app:a", Rate: 5, Period: "1s", Burst: 10, Code: "c", Message: "m"},
	}
	if !reflect.DeepEqual(d.Limits, want) {
		t.Errorf("limits %+v, want %+v", d.Limits, want)
	}
}

func TestDecideEvalErrorIsNotAnAllow(t *testing.T) {
	// A built-in error must fail the decision, not silently skip the refusing rule.
	d, err := decideWith(t, `decision := {"allow": to_number(input.message.body) > 0, "reasons": [{"code": "x", "message": "x"}]}`)
	if ErrorCode(err) != CodeEval || d.Allow {
		t.Fatalf("got %+v, %v; want %s", d, err, CodeEval)
	}
	p := compileStarter(t)
	if _, err := p.Decide(context.Background(), nil); ErrorCode(err) != CodeEval {
		t.Errorf("nil input: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := p.Decide(ctx, otpSG()); err == nil || d.Allow {
		t.Errorf("cancelled context: %+v, %v", d, err)
	}
}

func TestEvalExplains(t *testing.T) {
	p := compileStarter(t)
	in := with(func(m *MessageInput) { m.Country = "FR" })
	ev, err := Eval(context.Background(), p, in, ExplainFull)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Decision.Allow || ev.Revision != p.Revision() {
		t.Errorf("decision %+v revision %s", ev.Decision, ev.Revision)
	}
	trace := strings.Join(ev.Trace, "\n")
	for _, s := range []string{"destination.rego:25", "Exit data.smsproxy.deny"} {
		if !strings.Contains(trace, s) {
			t.Errorf("full trace does not mention %q", s)
		}
	}
	ev, err = Eval(context.Background(), p, in, ExplainOff)
	if err != nil || ev.Trace != nil || ev.Decision.Allow {
		t.Errorf("ExplainOff: %+v, %v", ev, err)
	}
	ev, err = Eval(context.Background(), p, in, ExplainFails)
	if err != nil || !strings.Contains(strings.Join(ev.Trace, "\n"), "Fail data.smsproxy.country_data.alphanumeric = false") {
		t.Errorf("ExplainFails does not show why the sender rule did not fire: %v\n%s", err, strings.Join(ev.Trace, "\n"))
	}
	ev, err = Eval(context.Background(), p, in, ExplainNotes)
	if err != nil || ev.Trace == nil || len(ev.Trace) != 0 {
		t.Errorf("ExplainNotes with no notes: %q, %v", ev.Trace, err)
	}
}
