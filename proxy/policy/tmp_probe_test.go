package policy

import (
	"context"
	"strings"
	"testing"
)

func probeMods(b *testing.B, edit func(m map[string]string)) {
	base := starterBundle(b)
	mods := map[string]string{}
	for k, v := range base.Modules {
		if !strings.HasSuffix(k, "_test.rego") {
			mods[k] = v
		}
	}
	edit(mods)
	bundle, err := NewBundle(mods, devData())
	if err != nil {
		b.Fatal(err)
	}
	p, err := Compile(context.Background(), bundle)
	if err != nil {
		b.Fatal(err)
	}
	in := otpSG()
	ctx := context.Background()
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := p.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

func rep(m map[string]string, file, old, new string) {
	if !strings.Contains(m[file], old) {
		panic(old)
	}
	m[file] = strings.Replace(m[file], old, new, 1)
}

func BenchmarkProbeFull(b *testing.B) { probeMods(b, func(m map[string]string) {}) }
func BenchmarkProbeNoLimits(b *testing.B) {
	probeMods(b, func(m map[string]string) { rep(m, "decision.rego", `"limits": granted_limits`, `"limits": []`) })
}
func BenchmarkProbeNoMasks(b *testing.B) {
	probeMods(b, func(m map[string]string) { rep(m, "decision.rego", `"masks": masks`, `"masks": []`) })
}
func BenchmarkProbeNoDeny(b *testing.B) {
	probeMods(b, func(m map[string]string) {
		rep(m, "decision.rego", `"allow": allow`, `"allow": true`)
		rep(m, "decision.rego", `"reasons": reasons`, `"reasons": []`)
		rep(m, "decision.rego", `"limits": granted_limits`, `"limits": sort(limits)`)
	})
}
func BenchmarkProbeOnlyDeny(b *testing.B) {
	probeMods(b, func(m map[string]string) {
		rep(m, "decision.rego", `"limits": granted_limits`, `"limits": []`)
		rep(m, "decision.rego", `"masks": masks`, `"masks": []`)
		rep(m, "decision.rego", `"obligations": sort(obligations)`, `"obligations": []`)
		rep(m, "decision.rego", `"route": {"providers": providers}`, `"route": {"providers": []}`)
	})
}

func BenchmarkProbeLimitsInline(b *testing.B) {
	probeMods(b, func(m map[string]string) {
		m["limits.rego"] = `package smsproxy

limits contains {"key": concat("", ["app:", input.app]), "rate": cfg.rate, "period": cfg.period, "burst": object.get(cfg, "burst", 0), "code": "app_rate_exceeded",
	"message": concat("", ["App \"", input.app, "\" has reached its limit of ", format_int(cfg.rate, 10), " messages per ", cfg.period, "."])} if {
	input.app != ""
	cfg := data.region.limits.app
}
`
	})
}

func BenchmarkProbeLimitsConst(b *testing.B) {
	probeMods(b, func(m map[string]string) {
		m["limits.rego"] = `package smsproxy

limits contains {"key": "app:x", "rate": 1, "period": "1s", "burst": 0, "code": "app_rate_exceeded", "message": "x"} if {
	input.app != ""
}
`
	})
}

func BenchmarkProbeLimitsOneDeclare(b *testing.B) {
	probeMods(b, func(m map[string]string) {
		m["limits.rego"] = `package smsproxy

declare(key, cfg, code, message) := {
	"key": key,
	"rate": cfg.rate,
	"period": cfg.period,
	"burst": object.get(cfg, "burst", 0),
	"code": code,
	"message": message,
}
limits contains declare(concat("", ["app:", input.app]), cfg, "app_rate_exceeded",
	concat("", ["App \"", input.app, "\" has reached its limit of ", format_int(cfg.rate, 10), " messages per ", cfg.period, "."])) if {
	input.app != ""
	cfg := data.region.limits.app
}
`
	})
}
