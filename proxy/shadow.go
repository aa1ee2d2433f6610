package proxy

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/proxy/policy"
)

// Shadow mode evaluates a candidate policy bundle beside the live one on real traffic. The live
// decision alone decides; the candidate's is compared with it afterwards, off the request path, and
// every disagreement is counted and logged without personal data. Compliance uses it to see what a
// rule change would do before rolling it out.

// shadowQueue bounds the decisions waiting for the candidate; when it is full, decisions are dropped
// and counted rather than slowing Submit down.
const shadowQueue = 1024

// shadowTimeout bounds one candidate evaluation.
const shadowTimeout = 2 * time.Second

// ShadowStats counts what shadow mode saw since start.
type ShadowStats struct {
	// Agreements and Disagreements count compared decisions: the same allow and reason codes, or not.
	Agreements    uint64
	Disagreements uint64
	// Dropped counts decisions not compared because the queue was full.
	Dropped uint64
	// Errors counts candidate evaluations that failed.
	Errors uint64
	// Revision is the candidate bundle's revision, "" when none is loaded.
	Revision string
}

// shadowJob is one live decision waiting for the candidate's.
type shadowJob struct {
	in      *policy.Input
	allow   bool
	codes   []string
	liveRev string
}

// shadow runs the candidate bundle on a single worker goroutine.
type shadow struct {
	log  *slog.Logger
	cand atomic.Pointer[policy.Prepared]
	jobs chan shadowJob

	agree, disagree, dropped, failed atomic.Uint64

	mu     sync.RWMutex // guards closed against sends on a closed jobs channel
	closed bool
	done   chan struct{}
}

func newShadow(log *slog.Logger, queue int) *shadow {
	s := &shadow{log: log, jobs: make(chan shadowJob, queue), done: make(chan struct{})}
	go s.run()
	return s
}

// swap makes p the candidate; nil is ignored.
func (s *shadow) swap(p *policy.Prepared) {
	if s == nil || p == nil {
		return
	}
	old := s.cand.Swap(p)
	if old == nil || old.Revision() != p.Revision() {
		s.log.Info("shadow policy loaded", "candidate_revision", p.Revision(), "old_candidate_revision", revisionOf(old))
	}
}

func revisionOf(p *policy.Prepared) string {
	if p == nil {
		return ""
	}
	return p.Revision()
}

// observe hands a live decision to the candidate. It never blocks: when the queue is full the
// decision is dropped and counted. in must not change afterwards. The live revision logged is
// dec.Revision, the policy that made the decision.
func (s *shadow) observe(in *policy.Input, dec *policy.Decision) {
	if s == nil || s.cand.Load() == nil {
		return
	}
	job := shadowJob{in: in, allow: dec.Allow, codes: reasonCodes(dec.Reasons), liveRev: dec.Revision}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	select {
	case s.jobs <- job:
	default:
		s.dropped.Add(1)
	}
}

func reasonCodes(rs []policy.Reason) []string {
	codes := make([]string, len(rs))
	for i, r := range rs {
		codes[i] = r.Code
	}
	slices.Sort(codes)
	return slices.Compact(codes)
}

func (s *shadow) run() {
	defer close(s.done)
	for job := range s.jobs {
		s.compare(job)
	}
}

func (s *shadow) compare(job shadowJob) {
	cand := s.cand.Load()
	if cand == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shadowTimeout)
	dec, err := cand.Decide(ctx, job.in)
	cancel()
	if err != nil {
		s.failed.Add(1)
		s.log.Warn("shadow policy evaluation failed", "code", policy.ErrorCode(err), "candidate_revision", cand.Revision())
		return
	}
	codes := reasonCodes(dec.Reasons)
	if dec.Allow == job.allow && slices.Equal(codes, job.codes) {
		s.agree.Add(1)
		return
	}
	s.disagree.Add(1)
	m := &job.in.Message
	s.log.Info("shadow policy disagrees",
		"country", m.Country, "category", m.Category, "sender_kind", m.SenderKind,
		"live_allow", job.allow, "live_codes", job.codes, "live_revision", job.liveRev,
		"candidate_allow", dec.Allow, "candidate_codes", codes, "candidate_revision", dec.Revision)
}

// close stops taking decisions and waits until the queued ones are compared.
func (s *shadow) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.jobs)
	}
	s.mu.Unlock()
	<-s.done
}

func (s *shadow) stats() ShadowStats {
	if s == nil {
		return ShadowStats{}
	}
	return ShadowStats{
		Agreements:    s.agree.Load(),
		Disagreements: s.disagree.Load(),
		Dropped:       s.dropped.Load(),
		Errors:        s.failed.Load(),
		Revision:      revisionOf(s.cand.Load()),
	}
}

// ShadowStats returns shadow mode's counters; all zero when shadow mode is off.
func (p *Proxy) ShadowStats() ShadowStats { return p.shadow.stats() }

// loadShadowBundle reads the candidate policies from cfg.ShadowPoliciesDir with the live region data.
func loadShadowBundle(cfg *config.Config, region *config.Region) (policy.Bundle, error) {
	return policy.LoadBundle(os.DirFS(cfg.ShadowPoliciesDir), map[string]any{"region": region.Data})
}

// reloadShadow compiles the candidate bundle for region and swaps it in. A candidate that does not
// load, compile or pass its tests is logged and the previous one kept: shadow mode never stops the
// proxy.
func (p *Proxy) reloadShadow(ctx context.Context, region *config.Region) {
	if p.shadow == nil {
		return
	}
	b, err := loadShadowBundle(&p.cfg, region)
	if err != nil {
		p.log.Error("shadow policy not loaded; keeping the previous candidate", "code", policy.ErrorCode(err), "err", err)
		return
	}
	if cur := p.shadow.cand.Load(); cur != nil && cur.Revision() == b.Revision {
		return
	}
	prep, err := policy.Compile(ctx, b)
	if err != nil {
		p.log.Error("shadow policy refused; keeping the previous candidate",
			"refused_revision", b.Revision, "code", policy.ErrorCode(err), "err", err)
		return
	}
	p.shadow.swap(prep)
}
