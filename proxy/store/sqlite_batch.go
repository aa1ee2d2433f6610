package store

import (
	"database/sql"
	"errors"

	"github.com/smsproxy/smsproxy/proxy/audit"
)

// The operations below run set-based in the writer (see setRunner): a run of them queued together
// reads what it needs with one query per table, works out every outcome in memory in queue order,
// and writes with one multi-row statement per table and kind of change.

// acceptOp is one Accept call.
type acceptOp struct {
	a       Accepted
	key     any // the idempotency key, or nil
	detail  string
	audit   string
	payload []byte
	created int64
	// subject is the recipient's subject key when the message has one: it seals personal in the
	// "message.accepted" event; payload is already sealed under it and ref is its lookup hash.
	subject  *audit.SubjectKey
	personal []byte
	ref      string
	res      AcceptResult
	keyGen   uint64 // the pending subject key the writer inserted with it, set in the writer
}

// refuseOp is one Refuse call.
type refuseOp struct {
	id       any // the message id, or nil
	app      string
	data     string
	at       int64
	key      *audit.SubjectKey // seals personal, when not nil
	personal []byte
	keyGen   uint64 // the pending subject key the writer inserted with it, set in the writer
}

// sentOp is one RecordSent call.
type sentOp struct {
	sent []Sent
	// data holds each send's "message.sent" audit data, encoded by the caller.
	data    []string
	missing []string
	learned []learnedID
}

// learnedID is a provider message id recorded by a RecordSent call, for the correlation cache.
type learnedID struct {
	key string
	c   correlation
}

// failedOp is one RecordFailed call.
type failedOp struct {
	failed []Failed
	// data holds each failure's "message.failed" audit data, encoded by the caller.
	data    []string
	missing []string
}

// receiptOp is one ApplyReceipt call, its message already correlated.
type receiptOp struct {
	r    Receipt
	kind string
	c    correlation
	at   int64
	data string // the audit data, encoded by the caller
	res  ReceiptResult
}

// msgState is a message's row as a pass sees it: as read, then with the pass's changes.
type msgState struct {
	id, app, status, provider, pmid string
	attempts                        int
	updated                         int64
	// changed is 0 when the pass leaves the row alone, changedStatus when only status, attempts and
	// updated_at change, and changedProvider when provider and provider_message_id change too.
	changed int
}

const (
	changedStatus = 1 + iota
	changedProvider
)

type pairKey struct{ provider, pmid string }

type idemKey struct{ app, key string }

// idemRow is an earlier message found under an idempotency key.
type idemRow struct {
	id, hash, status string
	created          int64
}

// auditRow is one audit event to append. key and personal, when set, are sealed into sealed as the
// chain links the row, which also fills seq, ref, prev and hash.
type auditRow struct {
	at       int64
	kind     string
	id       any
	app      string
	data     string
	key      *audit.SubjectKey
	personal []byte

	seq        int64
	ref        string
	sealed     []byte
	prev, hash []byte
}

// maxLive bounds the messages whose state the writer keeps in memory.
const maxLive = 200_000

// liveStates is the writer's exact knowledge of the messages it accepted or changed and that are
// not final yet, so that sends and receipts need not read them back. The writer is the only one to
// change messages, so an entry is the row as committed. Changes of a transaction wait in pending
// until it commits, and are dropped if it does not. Only the writer goroutine uses it.
//
// An operation that changes or deletes messages outside a pass (a closure given to submit) must
// call forget for each message it touches, or the next pass works from a stale row.
type liveStates struct {
	live    map[string]msgState
	pending map[string]msgState
}

// get returns the state of id as the current transaction sees it, if known.
func (l *liveStates) get(id string) (msgState, bool) {
	if st, ok := l.pending[id]; ok {
		return st, true
	}
	st, ok := l.live[id]
	return st, ok
}

// set records st as the state of its message in the current transaction.
func (l *liveStates) set(st msgState) {
	st.changed = 0
	l.pending[st.id] = st
}

// forget drops what is known of id; an operation that changes a message outside a pass calls it.
func (l *liveStates) forget(id string) {
	delete(l.pending, id)
	delete(l.live, id)
}

// ended installs the pending states when the transaction committed, and drops them either way.
func (l *liveStates) ended(committed bool) {
	if committed {
		for id, st := range l.pending {
			switch {
			case IsFinal(st.status):
				delete(l.live, id)
			case len(l.live) < maxLive:
				l.live[id] = st
			default:
				delete(l.live, id)
			}
		}
	}
	clear(l.pending)
}

// pass is the writer's scratch space for one run of set operations; it is reused.
type pass struct {
	states  map[string]*msgState
	want    []string // message ids to read
	pairs   map[pairKey]string
	wantP   []pairKey
	idemDB  map[idemKey]idemRow
	wantI   []idemKey
	idemNew map[idemKey]*acceptOp
	newIDs  map[string]bool

	inserts []*acceptOp
	keys    []keyRow // pending subject keys the pass's sealed writes use
	audits  []auditRow
	changed []*msgState
	delOut  []string
}

func newPass() *pass {
	return &pass{
		states: map[string]*msgState{}, pairs: map[pairKey]string{}, idemDB: map[idemKey]idemRow{},
		idemNew: map[idemKey]*acceptOp{}, newIDs: map[string]bool{},
	}
}

func (p *pass) reset() {
	clear(p.states)
	clear(p.pairs)
	clear(p.idemDB)
	clear(p.idemNew)
	clear(p.newIDs)
	clear(p.inserts)
	clear(p.changed)
	for i := range p.audits {
		p.audits[i] = auditRow{}
	}
	p.want, p.wantP, p.wantI = p.want[:0], p.wantP[:0], p.wantI[:0]
	p.inserts, p.audits, p.changed, p.delOut = p.inserts[:0], p.audits[:0], p.changed[:0], p.delOut[:0]
	p.keys = p.keys[:0]
}

func (p *pass) wantState(l *liveStates, id string) {
	if _, ok := p.states[id]; ok {
		return
	}
	if st, ok := l.get(id); ok {
		p.states[id] = &st
		return
	}
	p.states[id] = nil
	p.want = append(p.want, id)
}

func (p *pass) touch(st *msgState, how int) {
	if st.changed == 0 {
		p.changed = append(p.changed, st)
	}
	st.changed = max(st.changed, how)
}

func (p *pass) audit(at int64, kind string, id any, app string, data string) {
	p.audits = append(p.audits, auditRow{at: at, kind: kind, id: id, app: app, data: data})
}

func (p *pass) auditSealed(at int64, kind string, id any, app, data string, key *audit.SubjectKey, personal []byte) {
	p.audits = append(p.audits, auditRow{at: at, kind: kind, id: id, app: app, data: data, key: key, personal: personal})
}

// runSet is the SQLite store's setRunner.
func (s *SQLite) runSet(ops []*writeOp, res []error) error {
	p, w := s.pass, s.w
	p.reset()
	for _, op := range ops {
		switch o := op.set.(type) {
		case *acceptOp:
			if o.key != nil {
				p.wantI = append(p.wantI, idemKey{o.a.App, o.a.IdempotencyKey})
			}
		case *sentOp:
			for _, x := range o.sent {
				p.wantState(s.live, x.MessageID)
				// Provider message ids are new in all but rare cases. A pass of several operations
				// leaves checking them to the unique index: a clash fails the pass and each
				// operation runs again alone, where they are checked.
				if len(ops) == 1 {
					p.wantP = append(p.wantP, pairKey{x.Provider, x.ProviderMessageID})
				}
			}
		case *failedOp:
			for _, x := range o.failed {
				p.wantState(s.live, x.MessageID)
			}
		case *receiptOp:
			p.wantState(s.live, o.c.messageID)
		}
	}
	if err := s.readPass(p); err != nil {
		return err
	}
	for i, op := range ops {
		res[i] = nil
		switch o := op.set.(type) {
		case *acceptOp:
			res[i] = p.accept(o)
			o.keyGen = p.useKey(s, o.ref)
		case *refuseOp:
			if o.key != nil {
				o.keyGen = p.useKey(s, o.key.Ref())
			}
			p.auditSealed(o.at, AuditRefused, o.id, o.app, o.data, o.key, o.personal)
		case *sentOp:
			if err := s.sent(p, o); err != nil {
				return err
			}
		case *failedOp:
			p.failed(o)
		case *receiptOp:
			res[i] = p.receipt(o)
		default:
			res[i] = errors.New("store: unknown write operation")
		}
	}
	if err := s.writePass(p, w); err != nil {
		return err
	}
	for _, o := range p.inserts {
		s.live.set(msgState{id: o.a.ID, app: o.a.App, status: StatusAccepted})
	}
	for _, st := range p.changed {
		s.live.set(*st)
	}
	return nil
}

// readPass reads the rows the pass's operations depend on.
func (s *SQLite) readPass(p *pass) error {
	w := s.w
	if len(p.wantI) > 0 {
		err := w.queryChunks(&sqlIdempotent, len(p.wantI), func(i int, args []any) []any {
			return append(args, p.wantI[i].app, p.wantI[i].key)
		}, func(rows *sql.Rows) error {
			var k idemKey
			var r idemRow
			if err := rows.Scan(&k.app, &k.key, &r.id, &r.hash, &r.status, &r.created); err != nil {
				return err
			}
			p.idemDB[k] = r
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(p.want) > 0 {
		err := w.queryChunks(&sqlStates, len(p.want), func(i int, args []any) []any {
			return append(args, p.want[i])
		}, func(rows *sql.Rows) error {
			st := &msgState{}
			if err := rows.Scan(&st.id, &st.app, &st.status, &st.provider, &st.pmid, &st.attempts); err != nil {
				return err
			}
			p.states[st.id] = st
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(p.wantP) > 0 {
		err := w.queryChunks(&sqlOwners, len(p.wantP), func(i int, args []any) []any {
			return append(args, p.wantP[i].provider, p.wantP[i].pmid)
		}, func(rows *sql.Rows) error {
			var k pairKey
			var id string
			if err := rows.Scan(&k.provider, &k.pmid, &id); err != nil {
				return err
			}
			p.pairs[k] = id
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *pass) accept(o *acceptOp) error {
	a := &o.a
	if o.key != nil {
		k := idemKey{a.App, a.IdempotencyKey}
		var prev idemRow
		found := false
		if n := p.idemNew[k]; n != nil {
			prev, found = idemRow{id: n.a.ID, hash: n.a.RequestHash, status: StatusAccepted, created: n.created}, true
		} else if r, ok := p.idemDB[k]; ok {
			prev, found = r, true
		}
		if found {
			if prev.hash != a.RequestHash {
				return &Error{Code: CodeIdempotencyConflict, Message: "the idempotency key was already used for a different request"}
			}
			if st := p.states[prev.id]; st != nil {
				prev.status = st.status
			}
			o.res = AcceptResult{ID: prev.id, Duplicate: true, Status: prev.status, CreatedAt: fromNanos(prev.created)}
			return nil
		}
		p.idemNew[k] = o
	}
	if p.newIDs[a.ID] {
		return errDuplicateID
	}
	p.newIDs[a.ID] = true
	if _, ok := p.states[a.ID]; ok {
		// A later operation of this pass names the new message: let it see the row.
		p.states[a.ID] = &msgState{id: a.ID, app: a.App, status: StatusAccepted, updated: o.created}
	}
	p.inserts = append(p.inserts, o)
	p.auditSealed(o.created, AuditAccepted, a.ID, a.App, o.audit, o.subject, o.personal)
	o.res = AcceptResult{ID: a.ID, Status: StatusAccepted, CreatedAt: fromNanos(o.created)}
	return nil
}

var errDuplicateID = &Error{Code: CodeDuplicateID, Message: "a message with this id already exists"}

func (s *SQLite) sent(p *pass, o *sentOp) error {
	o.missing, o.learned = o.missing[:0], o.learned[:0]
	for i, x := range o.sent {
		st := p.states[x.MessageID]
		if st == nil {
			o.missing = append(o.missing, x.MessageID)
			continue
		}
		at := orNow(x.At).UnixNano()
		k := pairKey{x.Provider, x.ProviderMessageID}
		owner, known := p.pairs[k]
		learn := func() {
			p.pairs[k] = x.MessageID
			o.learned = append(o.learned, learnedID{corrKey(x.Provider, x.ProviderMessageID), correlation{x.MessageID, st.app}})
		}
		switch {
		case st.status == StatusAccepted:
			pmid := x.ProviderMessageID
			if known && owner != x.MessageID {
				s.log.Warn("store: provider message id already belongs to another message",
					"provider", x.Provider, "message_id", x.MessageID)
				pmid = ""
			} else if !known {
				learn()
			}
			st.status, st.provider, st.pmid, st.updated = StatusSent, x.Provider, pmid, at
			if x.Attempts > 0 {
				st.attempts = x.Attempts
			}
			p.touch(st, changedProvider)
			p.audit(at, AuditSent, x.MessageID, st.app, o.data[i])
		case known || (st.provider == x.Provider && st.pmid == x.ProviderMessageID):
			// Recorded before: nothing changes.
		default:
			// A further provider message id for a message already sent (failover after a timeout).
			r, err := s.w.insProviderID.ExecContext(bg, x.Provider, x.ProviderMessageID, x.MessageID)
			if err != nil {
				return err
			}
			added, err := r.RowsAffected()
			if err != nil {
				return err
			}
			if added > 0 {
				learn()
				p.audit(at, AuditSent, x.MessageID, st.app, mustJSON(sentAudit{x.Provider, x.ProviderMessageID, x.Attempts, true, x.PossibleDuplicate}))
			}
		}
		p.delOut = append(p.delOut, x.MessageID)
	}
	return nil
}

func (p *pass) failed(o *failedOp) {
	o.missing = o.missing[:0]
	for i, x := range o.failed {
		st := p.states[x.MessageID]
		if st == nil {
			o.missing = append(o.missing, x.MessageID)
			continue
		}
		if IsFinal(st.status) {
			continue
		}
		at := orNow(x.At).UnixNano()
		st.status, st.updated = StatusFailed, at
		how := changedStatus
		if x.Provider != "" && x.Provider != st.provider {
			st.provider, how = x.Provider, changedProvider
		}
		if x.Attempts > 0 {
			st.attempts = x.Attempts
		}
		p.touch(st, how)
		p.audit(at, AuditFailed, x.MessageID, st.app, o.data[i])
		p.delOut = append(p.delOut, x.MessageID)
	}
}

func (p *pass) receipt(o *receiptOp) error {
	st := p.states[o.c.messageID]
	if st == nil {
		return ErrNotFound
	}
	o.res = ReceiptResult{MessageID: o.c.messageID, App: o.c.app, Status: st.status}
	if IsFinal(st.status) {
		return nil
	}
	st.status, st.updated = o.r.Status, o.at
	p.touch(st, changedStatus)
	p.audit(o.at, o.kind, o.c.messageID, o.c.app, o.data)
	o.res.Status, o.res.Applied = o.r.Status, true
	return nil
}

// writePass writes what the pass worked out: new messages and their outbox rows, changed
// messages, removed outbox rows, then the audit events in the order their operations were queued.
func (s *SQLite) writePass(p *pass, w *sqliteWriteStmts) error {
	if n := len(p.keys); n > 0 {
		err := w.execChunks(&sqlInsSubjectKeys, n, func(i int, args []any) []any {
			k := p.keys[i]
			return append(args, k.ref, k.keyID, k.wrapped)
		})
		if err != nil {
			return err
		}
	}
	if n := len(p.inserts); n > 0 {
		err := w.execChunks(&sqlInsMessages, n, func(i int, args []any) []any {
			a := &p.inserts[i].a
			o := p.inserts[i]
			return append(args, a.ID, a.App, o.key, a.RequestHash, a.ToMasked, a.ToHash, a.Country, a.Sender,
				a.SenderKind, a.Category, a.Body, a.Encoding, a.Segments, o.created, o.created, o.detail)
		})
		if err != nil {
			if isUniqueViolation(err) {
				return errDuplicateID
			}
			return err
		}
		err = w.execChunks(&sqlInsOutbox, n, func(i int, args []any) []any {
			o := p.inserts[i]
			return append(args, o.a.ID, o.payload, o.created, o.created, o.ref)
		})
		if err != nil {
			return err
		}
	}
	if len(p.changed) > 0 {
		full, status := 0, 0
		for _, st := range p.changed {
			if st.changed == changedProvider {
				full++
			} else {
				status++
			}
		}
		// Sorting by kind lets each statement take a contiguous range.
		byKind := func(kind int) func(i int, args []any) []any {
			idx := 0
			return func(_ int, args []any) []any {
				for p.changed[idx].changed != kind {
					idx++
				}
				st := p.changed[idx]
				idx++
				if kind == changedProvider {
					return append(args, st.id, st.status, st.provider, st.pmid, st.attempts, st.updated)
				}
				return append(args, st.id, st.status, st.attempts, st.updated)
			}
		}
		if full > 0 {
			if err := w.execChunks(&sqlSetSent, full, byKind(changedProvider)); err != nil {
				return err
			}
		}
		if status > 0 {
			if err := w.execChunks(&sqlSetStatus, status, byKind(changedStatus)); err != nil {
				return err
			}
		}
	}
	if n := len(p.delOut); n > 0 {
		err := w.execChunks(&sqlDelOutbox, n, func(i int, args []any) []any { return append(args, p.delOut[i]) })
		if err != nil {
			return err
		}
	}
	if n := len(p.audits); n > 0 {
		// The events are chained in the order their operations were queued; a failure from here
		// on rolls the pass back, and the chain with it (see chainTx).
		for i := range p.audits {
			if err := s.trail.link(&p.audits[i]); err != nil {
				return err
			}
		}
		err := w.execChunks(&sqlInsAudit, n, func(i int, args []any) []any {
			e := &p.audits[i]
			return append(args, e.seq, e.at, e.kind, e.id, e.app, e.data, e.sealed, e.ref, e.prev, e.hash)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// keyRow is a pending subject key to insert with the write that first seals under it.
type keyRow struct {
	ref, keyID string
	wrapped    []byte
}

// useKey adds ref's pending subject key, if it has one, to the pass's inserts and returns its
// generation (0: none was pending).
func (p *pass) useKey(s *SQLite, ref string) uint64 {
	if ref == "" || s.trail == nil || s.trail.keys == nil {
		return 0
	}
	pk, ok := s.trail.keys.pendingFor(ref)
	if !ok {
		return 0
	}
	p.keys = append(p.keys, keyRow{ref: ref, keyID: pk.keyID, wrapped: pk.wrapped})
	return pk.gen
}
