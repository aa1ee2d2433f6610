package policy

import (
	"context"
	"strings"
	"testing"
)

// TestClassMayReadOnlyTheClassFields checks that a bundle whose class would depend on more than the
// class fields is refused, naming the rule and what it reads, because a kept class would be wrong.
func TestClassMayReadOnlyTheClassFields(t *testing.T) {
	cases := map[string]struct {
		module string
		want   []string
	}{
		"body": {
			module: "package smsproxy\n\nclass_deny contains {\"code\": \"x\", \"message\": \"x\", \"rule\": \"x\"} if contains(input.message.body, \"cvv\")\n",
			want:   []string{"input.message.body", "extra.rego"},
		},
		"facts through a helper rule": {
			module: "package smsproxy\n\nopted := input.facts.opted_out\n\nclass_deny contains {\"code\": \"x\", \"message\": \"x\", \"rule\": \"x\"} if opted\n",
			want:   []string{"input.facts.opted_out", "data.smsproxy.opted"},
		},
		"the whole message": {
			module: "package smsproxy\n\nclass_deny contains {\"code\": \"x\", \"message\": \"x\", \"rule\": \"x\"} if object.get(input.message, \"to\", \"\") == \"+1\"\n",
			want:   []string{"input.message"},
		},
		"the decision": {
			module: "package smsproxy\n\nclass_deny contains {\"code\": \"x\", \"message\": \"x\", \"rule\": \"x\"} if decision.allow == false\n",
			want:   []string{"input.class"},
		},
		"the clock": {
			module: "package smsproxy\n\nclass_deny contains {\"code\": \"x\", \"message\": \"x\", \"rule\": \"x\"} if time.now_ns() < 0\n",
			want:   []string{"time.now_ns"},
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := Compile(context.Background(), starterWith(t, map[string]string{"extra.rego": c.module}))
			if err == nil {
				t.Fatalf("bundle accepted (revision %s)", p.Revision())
			}
			if ErrorCode(err) != CodeCompile {
				t.Fatalf("code %q: %v", ErrorCode(err), err)
			}
			for _, s := range append(c.want, ClassRule) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not mention %q: %v", s, err)
				}
			}
		})
	}
}

// TestClassKeptPerClass checks that messages of one class share one kept class document while their
// own fields are still decided per message, and that each class gets its own document.
func TestClassKeptPerClass(t *testing.T) {
	p := compileRegion(t, "dev")
	ctx := context.Background()
	clean := txn("SG", nil)
	card := txn("SG", func(in *Input) { in.Message.Body = "Card 4111 1111 1111 1111 was charged." })
	for range 3 {
		d, err := p.Decide(ctx, clean)
		if err != nil || !d.Allow {
			t.Fatalf("clean message: %+v, %v", d, err)
		}
		d, err = p.Decide(ctx, card)
		if err != nil || d.Allow || len(d.Reasons) == 0 || d.Reasons[0].Code != "content_card_number" {
			t.Fatalf("card number in the same class: %+v, %v", d, err)
		}
	}
	if n := p.class.cache.Len(); n != 1 {
		t.Fatalf("%d classes kept after one class, want 1", n)
	}
	us, err := p.Decide(ctx, txn("US", nil))
	if err != nil {
		t.Fatal(err)
	}
	sg, _ := p.Decide(ctx, clean)
	if n := p.class.cache.Len(); n != 2 {
		t.Fatalf("%d classes kept after two classes, want 2", n)
	}
	if strings.Join(us.Route.Providers, ",") == "" || len(us.Obligations) == len(sg.Obligations) && len(us.Limits) == len(sg.Limits) {
		t.Errorf("US and SG decided alike: %+v vs %+v", us, sg)
	}
}

// TestDecisionWithoutClassIsAnError checks that the pack's decision fails closed when the class is
// missing from its input (as when evaluated by hand without it).
func TestDecisionWithoutClassIsAnError(t *testing.T) {
	p := compileRegion(t, "dev")
	p.class = nil
	d, err := p.Decide(context.Background(), otpSG())
	if err == nil || d.Allow || ErrorCode(err) != CodeBadDecision {
		t.Fatalf("decision without a class: %+v, %v", d, err)
	}
}

// TestEvalTracesTheClass checks that an explained evaluation traces the class as well as the decision.
func TestEvalTracesTheClass(t *testing.T) {
	p := compileRegion(t, "dev")
	ev, err := Eval(context.Background(), p, otpSG(), ExplainFull)
	if err != nil || !ev.Decision.Allow {
		t.Fatalf("%+v, %v", ev.Decision, err)
	}
	trace := strings.Join(ev.Trace, "\n")
	for _, s := range []string{"data.smsproxy.class", "data.smsproxy.decision", "class.rego"} {
		if !strings.Contains(trace, s) {
			t.Errorf("trace does not mention %s", s)
		}
	}
}
