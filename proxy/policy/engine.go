package policy

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Engine answers decisions from the current policy revision and replaces it atomically.
// Decide never blocks on a reload: a reload compiles and tests the new bundle aside and swaps
// it in only when it is good. It is safe for concurrent use.
type Engine struct {
	current  atomic.Pointer[Prepared]
	log      *slog.Logger
	reloadMu sync.Mutex // one reload at a time, so revisions are logged in order
}

// NewEngine returns an engine answering from p, which may be nil until the first Swap or Reload.
// A nil logger uses slog.Default(). A p without a passing test (Prepared.Tested) is refused and
// logged: the engine then has no policy, and every decision fails with CodeNotLoaded until a tested
// bundle is swapped in.
func NewEngine(p *Prepared, logger *slog.Logger) *Engine {
	if logger == nil {
		logger = slog.Default()
	}
	e := &Engine{log: logger}
	if p != nil {
		if err := p.Tested(); err != nil {
			e.log.Error("policy refused; no policy is loaded",
				"refused_revision", p.revision, "code", ErrorCode(err), "error", err)
			return e
		}
		e.current.Store(p)
	}
	return e
}

// Decide evaluates the current policy for one message. The decision's Revision names the policy that
// made it; use it, not Revision, to record a decision, since a reload may swap the policy meanwhile.
func (e *Engine) Decide(ctx context.Context, in *Input) (Decision, error) {
	p := e.current.Load()
	if p == nil {
		return Decision{}, newError(CodeNotLoaded, "no policy is loaded", nil)
	}
	return p.Decide(ctx, in)
}

// Current returns the policy in use, or nil when none is loaded.
func (e *Engine) Current() *Prepared { return e.current.Load() }

// Revision returns the revision of the policy in use, or "" when none is loaded. It may already differ
// from the revision of a decision just made; a record of a decision uses Decision.Revision.
func (e *Engine) Revision() string {
	if p := e.current.Load(); p != nil {
		return p.revision
	}
	return ""
}

// Swap makes p the policy in use. A nil p is ignored: an engine never goes back to having no policy.
// A p without a passing test (Prepared.Tested) is refused and logged, and the current policy kept.
func (e *Engine) Swap(p *Prepared) {
	if p == nil {
		return
	}
	if err := p.Tested(); err != nil {
		e.log.Error("policy swap refused; keeping the current policy",
			"revision", e.Revision(), "refused_revision", p.revision, "code", ErrorCode(err), "error", err)
		return
	}
	old := e.current.Swap(p)
	e.log.Info("policy swapped", "old_revision", revisionOf(old), "new_revision", p.revision, "tests", p.tests)
}

// Reload loads a bundle, compiles it and runs its tests, and swaps it in only on success: the bundle
// compiles and has at least one passing test and no failing one.
// On failure it logs one error line, keeps the current policy and returns the error.
// A bundle whose revision is already in use is not recompiled.
func (e *Engine) Reload(ctx context.Context, load func() (Bundle, error)) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	old := e.current.Load()
	b, err := load()
	if err != nil {
		e.log.Error("policy reload failed; keeping the current policy",
			"revision", revisionOf(old), "code", ErrorCode(err), "error", err)
		return err
	}
	if old != nil && old.revision == b.Revision {
		e.log.Debug("policy unchanged", "revision", b.Revision)
		return nil
	}
	p, err := CompileLive(ctx, b)
	if err != nil {
		e.log.Error("policy reload refused; keeping the current policy",
			"revision", revisionOf(old), "refused_revision", b.Revision, "code", ErrorCode(err), "error", err)
		return err
	}
	e.Swap(p)
	return nil
}

func revisionOf(p *Prepared) string {
	if p == nil {
		return ""
	}
	return p.revision
}
