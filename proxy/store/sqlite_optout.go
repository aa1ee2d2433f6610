package store

import (
	"context"
	"time"

	"github.com/smsproxy/smsproxy/proxy/sms"
)

// importChunk is how many opt-outs one grouped write of ImportOptOuts holds, so that a large
// import never keeps the writer from committing messages for long.
const importChunk = 500

const (
	qInsOptOut      = `INSERT INTO opt_outs (number, masked, scope, app, source, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (number, scope) DO NOTHING`
	qOwnedOptOuts   = `SELECT seq, scope, source FROM opt_outs WHERE number = ? AND app = ?`
	qDelOptOut      = `DELETE FROM opt_outs WHERE seq = ?`
	qListOptOuts    = `SELECT seq, masked, scope, app, source, created_at FROM opt_outs WHERE app = ? AND seq > ? ORDER BY seq LIMIT ?`
	qInsConsent     = `INSERT INTO consents (app, number, masked, category, basis, source, granted_at) VALUES (?, ?, ?, ?, ?, ?, ?)`
	qWithdrawActive = `UPDATE consents SET withdrawn_at = ? WHERE app = ? AND number = ? AND category = ? AND withdrawn_at IS NULL`
	qConsentsOf     = `SELECT seq, app, number, category, basis, source, granted_at, COALESCE(withdrawn_at, 0)
 FROM consents WHERE app = ? AND number = ? ORDER BY seq`
	// qRecipientFacts reads a number's opt-out scopes (rows with seq 0, the scope in app), its
	// consent records in force (the latest per app and category) and its subject key (seq -1, the
	// key id in app, the wrapped key last) in one statement: a message to the number needs all
	// three, and one read costs less than two. SQLite-specific: the bare columns of an aggregate
	// query come from the row holding MAX(seq); PostgreSQL needs DISTINCT ON (app, category) ...
	// ORDER BY seq DESC instead.
	qRecipientFacts = `SELECT 0, scope, '', '', '', 0, 0, NULL FROM opt_outs WHERE number = ?
 UNION ALL
 SELECT MAX(seq), app, category, basis, source, granted_at, COALESCE(withdrawn_at, 0), NULL
 FROM consents WHERE number = ? GROUP BY app, category
 UNION ALL
 SELECT -1, key_id, '', '', '', 0, 0, wrapped FROM subject_keys WHERE ref = ?`
)

type optOutAudit struct {
	Number string `json:"number"`
	Scope  string `json:"scope"`
	Source string `json:"source"`
}

type consentAudit struct {
	Number   string `json:"number"`
	Category string `json:"category"`
	Basis    string `json:"basis,omitempty"`
	Source   string `json:"source,omitempty"`
	Records  int    `json:"records,omitempty"`
}

// auditSubject appends an audit event that belongs to no message but to the data subject whose
// lookup hash is ref (its subject_ref), on the writer's connection, so that a search by recipient
// and an erasure find it. Its data holds the masked number only; nothing is sealed.
func (s *SQLite) auditSubject(at int64, kind, app, ref string, data any) error {
	_, err := s.appendEvent(auditRow{at: at, kind: kind, app: app, data: mustJSON(data), ref: ref})
	return err
}

// AddOptOut records one opt-out and its "optout.added" audit event in one grouped write. added is
// false, and nothing is written, when the number already opted out of that scope.
func (s *SQLite) AddOptOut(ctx context.Context, o OptOut) (added bool, err error) {
	res, err := s.ImportOptOuts(ctx, []OptOut{o})
	return res.Imported == 1, err
}

// ImportOptOuts records many opt-outs, each with its "optout.added" audit event in the same
// transaction. Rows already present count as duplicates and write nothing. The rows are written in
// grouped writes of at most 500 rows; every row is checked before anything is written, and an error
// part way leaves the earlier chunks committed and the counts of what was done.
func (s *SQLite) ImportOptOuts(ctx context.Context, rows []OptOut) (ImportResult, error) {
	var total ImportResult
	for _, o := range rows {
		if err := checkOptOut(o); err != nil {
			return total, err
		}
	}
	for start := 0; start < len(rows); start += importChunk {
		chunk := rows[start:min(start+importChunk, len(rows))]
		var res ImportResult
		err := s.gc.submit(ctx, func() error {
			res = ImportResult{}
			st, err := s.wconn.PrepareContext(bg, qInsOptOut)
			if err != nil {
				return err
			}
			defer st.Close()
			for _, o := range chunk {
				at := orNow(o.CreatedAt).UnixNano()
				ref := s.trail.kr.LookupHash(o.Number)
				r, err := st.ExecContext(bg, ref, sms.MaskPhone(o.Number), o.Scope, o.App, o.Source, at)
				if err != nil {
					return err
				}
				if n, err := r.RowsAffected(); err != nil {
					return err
				} else if n == 0 {
					res.Duplicates++
					continue
				}
				res.Imported++
				if err := s.auditSubject(at, AuditOptOutAdded, o.App, ref,
					optOutAudit{Number: sms.MaskPhone(o.Number), Scope: o.Scope, Source: o.Source}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total.Imported += res.Imported
		total.Duplicates += res.Duplicates
	}
	return total, nil
}

// RemoveOptOut deletes the opt-outs of number that app recorded (its own scope and ScopeAll ones),
// each with an "optout.removed" audit event, in one grouped write. It returns how many it removed;
// none is ErrNotFound.
func (s *SQLite) RemoveOptOut(ctx context.Context, app, number string, at time.Time) (int, error) {
	if app == "" || number == "" {
		return 0, invalid("removing an opt-out needs an app and a number")
	}
	when := orNow(at).UnixNano()
	removed := 0
	err := s.gc.submit(ctx, func() error {
		removed = 0
		ref := s.trail.kr.LookupHash(number)
		rows, err := s.wconn.QueryContext(bg, qOwnedOptOuts, ref, app)
		if err != nil {
			return err
		}
		type owned struct {
			seq           int64
			scope, source string
		}
		var found []owned
		for rows.Next() {
			var o owned
			if err := rows.Scan(&o.seq, &o.scope, &o.source); err != nil {
				rows.Close()
				return err
			}
			found = append(found, o)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, o := range found {
			if _, err := s.wconn.ExecContext(bg, qDelOptOut, o.seq); err != nil {
				return err
			}
			if err := s.auditSubject(when, AuditOptOutRemoved, app, ref,
				optOutAudit{Number: sms.MaskPhone(number), Scope: o.scope, Source: o.source}); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if removed == 0 {
		return 0, ErrNotFound
	}
	return removed, nil
}

// ListOptOuts lists the opt-outs app recorded with a Seq greater than after, in Seq order. Numbers
// are masked: the store keeps only their lookup hash and masked form.
func (s *SQLite) ListOptOuts(ctx context.Context, app string, after int64, limit int) ([]OptOut, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if limit <= 0 {
		return nil, invalid("limit must be positive")
	}
	rows, err := s.rdb.QueryContext(ctx, qListOptOuts, app, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []OptOut{}
	for rows.Next() {
		var o OptOut
		var at int64
		if err := rows.Scan(&o.Seq, &o.Number, &o.Scope, &o.App, &o.Source, &at); err != nil {
			return nil, err
		}
		o.CreatedAt = fromNanos(at)
		out = append(out, o)
	}
	return out, rows.Err()
}

// RecordConsent appends a consent record, which becomes the one in force for its app, number and
// category, with a "consent.recorded" audit event in the same transaction.
func (s *SQLite) RecordConsent(ctx context.Context, c Consent) (Consent, error) {
	if err := checkConsent(c); err != nil {
		return Consent{}, err
	}
	c.GrantedAt = time.Unix(0, orNow(c.GrantedAt).UnixNano())
	c.WithdrawnAt = time.Time{}
	ref := s.trail.kr.LookupHash(c.Number)
	err := s.gc.submit(ctx, func() error {
		r, err := s.wconn.ExecContext(bg, qInsConsent, c.App, ref, sms.MaskPhone(c.Number), c.Category,
			c.Basis, c.Source, c.GrantedAt.UnixNano())
		if err != nil {
			return err
		}
		if c.Seq, err = r.LastInsertId(); err != nil {
			return err
		}
		return s.auditSubject(c.GrantedAt.UnixNano(), AuditConsentRecorded, c.App, ref,
			consentAudit{Number: sms.MaskPhone(c.Number), Category: c.Category, Basis: c.Basis, Source: c.Source})
	})
	if err != nil {
		return Consent{}, err
	}
	return c, nil
}

// WithdrawConsent marks app's consent records in force for number and category as withdrawn at
// at (zero means now), with a "consent.withdrawn" audit event in the same transaction. It returns
// how many records it changed; none is ErrNotFound.
func (s *SQLite) WithdrawConsent(ctx context.Context, app, number, category string, at time.Time) (int, error) {
	if app == "" || number == "" || category == "" {
		return 0, invalid("withdrawing consent needs an app, a number and a category")
	}
	when := orNow(at).UnixNano()
	n := 0
	ref := s.trail.kr.LookupHash(number)
	err := s.gc.submit(ctx, func() error {
		n = 0
		r, err := s.wconn.ExecContext(bg, qWithdrawActive, when, app, ref, category)
		if err != nil {
			return err
		}
		changed, err := r.RowsAffected()
		if err != nil || changed == 0 {
			return err
		}
		n = int(changed)
		return s.auditSubject(when, AuditConsentWithdrawn, app, ref,
			consentAudit{Number: sms.MaskPhone(number), Category: category, Records: n})
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, ErrNotFound
	}
	return n, nil
}

// Consents returns every consent record app holds for number, oldest first.
func (s *SQLite) Consents(ctx context.Context, app, number string) ([]Consent, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	cs, err := s.scanConsents(ctx, qConsentsOf, app, s.trail.kr.LookupHash(number))
	for i := range cs {
		cs[i].Number = number
	}
	return cs, err
}

// RecipientFacts returns the opt-out scopes of number and the consent record in force per app and
// category, for the policy's facts.
func (s *SQLite) RecipientFacts(ctx context.Context, number string) (RecipientFacts, error) {
	if s.closed.Load() {
		return RecipientFacts{}, ErrClosed
	}
	var f RecipientFacts
	ref := s.trail.kr.LookupHash(number)
	key := keyHint{changes: s.trail.keys.readStarts()}
	rows, err := s.r.facts.QueryContext(ctx, ref, ref, ref)
	if err != nil {
		return f, err
	}
	defer rows.Close()
	for rows.Next() {
		var c Consent
		var granted, withdrawn int64
		var wrapped []byte
		if err := rows.Scan(&c.Seq, &c.App, &c.Category, &c.Basis, &c.Source, &granted, &withdrawn, &wrapped); err != nil {
			return f, err
		}
		if c.Seq == -1 { // the subject key row: App holds its key id
			key.wrapped, key.keyID = wrapped, c.App
			continue
		}
		if c.Seq == 0 { // an opt-out row: App holds its scope
			f.OptOutScopes = append(f.OptOutScopes, c.App)
			continue
		}
		c.Number, c.GrantedAt, c.WithdrawnAt = number, fromNanos(granted), fromNanos(withdrawn)
		f.Consents = append(f.Consents, c)
	}
	if err := rows.Err(); err != nil {
		return f, err
	}
	s.trail.keys.hint(ref, key)
	return f, nil
}

func (s *SQLite) scanConsents(ctx context.Context, q string, args ...any) ([]Consent, error) {
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Consent
	for rows.Next() {
		var c Consent
		var granted, withdrawn int64
		if err := rows.Scan(&c.Seq, &c.App, &c.Number, &c.Category, &c.Basis, &c.Source, &granted, &withdrawn); err != nil {
			return nil, err
		}
		c.GrantedAt, c.WithdrawnAt = fromNanos(granted), fromNanos(withdrawn)
		out = append(out, c)
	}
	return out, rows.Err()
}
