package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
)

// importChunk is how many opt-outs one grouped write of ImportOptOuts holds, so that a large
// import never keeps the writer from committing messages for long.
const importChunk = 500

const (
	qInsOptOut = `WITH ins AS (
  INSERT INTO opt_outs (number, masked, scope, app, source, created_at) VALUES ($1, $7, $2, $3, $4, $5)
  ON CONFLICT (number, scope) DO NOTHING RETURNING seq
), audit AS (
  INSERT INTO audit_pending (at, kind, message_id, app, data, subject_ref) SELECT $5, 'optout.added', NULL, $3, $6, $1 FROM ins
)
SELECT count(*) FROM ins`
	// qRemoveOptOuts deletes the opt-outs of a number an app recorded, with an audit event each
	// whose data matches optOutAudit's JSON.
	qRemoveOptOuts = `WITH d AS (
  DELETE FROM opt_outs WHERE number = $1 AND app = $2 RETURNING seq, scope, source
), audit AS (
  INSERT INTO audit_pending (at, kind, message_id, app, data, subject_ref)
  SELECT $3, 'optout.removed', NULL, $2,
    ('{"number":' || to_json($4::text)::text || ',"scope":' || to_json(scope)::text || ',"source":' || to_json(source)::text || '}')::json, $1
  FROM d ORDER BY seq
)
SELECT count(*) FROM d`
	qListOptOuts  = `SELECT seq, masked, scope, app, source, created_at FROM opt_outs WHERE app = $1 AND seq > $2 ORDER BY seq LIMIT $3`
	qOptOutScopes = `SELECT scope FROM opt_outs WHERE number = $1 ORDER BY seq`
	qInsConsent   = `WITH ins AS (
  INSERT INTO consents (app, number, masked, category, basis, source, granted_at) VALUES ($1, $2, $8, $3, $4, $5, $6) RETURNING seq
), audit AS (
  INSERT INTO audit_pending (at, kind, message_id, app, data, subject_ref) SELECT $6, 'consent.recorded', NULL, $1, $7, $2 FROM ins
)
SELECT seq FROM ins`
	// qWithdraw marks the records in force withdrawn with one audit event whose data matches
	// consentAudit's JSON.
	qWithdraw = `WITH u AS (
  UPDATE consents SET withdrawn_at = $1 WHERE app = $2 AND number = $3 AND category = $4 AND withdrawn_at IS NULL RETURNING seq
), n AS (
  SELECT count(*) AS n FROM u
), audit AS (
  INSERT INTO audit_pending (at, kind, message_id, app, data, subject_ref)
  SELECT $1, 'consent.withdrawn', NULL, $2,
    ('{"number":' || to_json($5::text)::text || ',"category":' || to_json($4::text)::text || ',"records":' || n.n || '}')::json, $3
  FROM n WHERE n.n > 0
)
SELECT n FROM n`
	qConsentCols     = `seq, app, number, category, basis, source, granted_at, COALESCE(withdrawn_at, 0)`
	qConsentsOf      = `SELECT ` + qConsentCols + ` FROM consents WHERE app = $1 AND number = $2 ORDER BY seq`
	qConsentsInForce = `SELECT ` + qConsentCols + ` FROM (
  SELECT DISTINCT ON (app, category) * FROM consents WHERE number = $1 ORDER BY app, category, seq DESC
) c ORDER BY seq`
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
}

// checkOptOut mirrors the store's own checks of an opt-out, and refuses text PostgreSQL cannot hold.
func checkOptOut(o store.OptOut) error {
	switch {
	case o.Number == "" || len(o.Number) > 32 || o.Number[0] != '+':
		return invalid("an opt-out needs a number in E.164")
	case o.App == "":
		return invalid("an opt-out needs the app that records it")
	case o.Scope == "" || len(o.Scope) > 64:
		return invalid("an opt-out needs a scope: an app name or " + store.ScopeAll)
	case !store.ValidOptOutSource(o.Source):
		return invalid("an opt-out source must be api, import, reply or provider-migration")
	}
	return checkText("an opt-out", o.Number, o.App, o.Scope)
}

func checkConsent(c store.Consent) error {
	switch {
	case c.Number == "" || len(c.Number) > 32 || c.Number[0] != '+':
		return invalid("a consent record needs a number in E.164")
	case c.App == "":
		return invalid("a consent record needs an app")
	case c.Category == "" || len(c.Category) > 32:
		return invalid("a consent record needs a category")
	case !store.ValidBasis(c.Basis):
		return invalid("a consent basis must be consent, contract, legal_obligation or legitimate_interest")
	case len(c.Source) > 64:
		return invalid("a consent source is at most 64 characters")
	}
	return checkText("a consent record", c.Number, c.App, c.Category, c.Source)
}

// AddOptOut records one opt-out and its "optout.added" audit event in one grouped write. added is
// false, and nothing is written, when the number already opted out of that scope.
func (p *Postgres) AddOptOut(ctx context.Context, o store.OptOut) (added bool, err error) {
	res, err := p.ImportOptOuts(ctx, []store.OptOut{o})
	return res.Imported == 1, err
}

// ImportOptOuts records many opt-outs, each with its "optout.added" audit event in the same
// transaction. Rows already present count as duplicates and write nothing. The rows are written in
// grouped writes of at most 500 rows; every row is checked before anything is written, and an error
// part way leaves the earlier chunks committed and the counts of what was done.
func (p *Postgres) ImportOptOuts(ctx context.Context, rows []store.OptOut) (store.ImportResult, error) {
	var total store.ImportResult
	for _, o := range rows {
		if err := checkOptOut(o); err != nil {
			return total, err
		}
	}
	for start := 0; start < len(rows); start += importChunk {
		chunk := rows[start:min(start+importChunk, len(rows))]
		ats := make([]int64, len(chunk))
		data := make([]string, len(chunk))
		hashes := make([]string, len(chunk))
		for i, o := range chunk {
			hashes[i] = p.tr.kr.LookupHash(o.Number)
			ats[i] = orNow(o.CreatedAt).UnixNano()
			data[i] = mustJSON(optOutAudit{Number: sms.MaskPhone(o.Number), Scope: o.Scope, Source: o.Source})
		}
		var res store.ImportResult
		err := p.w.submit(ctx, func(b *pgx.Batch) {
			for i, o := range chunk {
				b.Queue(qInsOptOut, hashes[i], o.Scope, o.App, o.Source, ats[i], data[i], sms.MaskPhone(o.Number))
			}
		}, func(br pgx.BatchResults) error {
			res = store.ImportResult{}
			for range chunk {
				var n int
				if err := br.QueryRow().Scan(&n); err != nil {
					return err
				}
				if n == 0 {
					res.Duplicates++
				} else {
					res.Imported++
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
// none is store.ErrNotFound.
func (p *Postgres) RemoveOptOut(ctx context.Context, app, number string, at time.Time) (int, error) {
	if app == "" || number == "" {
		return 0, invalid("removing an opt-out needs an app and a number")
	}
	if err := checkText("an opt-out", app, number); err != nil {
		return 0, err
	}
	when := orNow(at).UnixNano()
	var removed int
	err := p.w.submit(ctx, func(b *pgx.Batch) {
		b.Queue(qRemoveOptOuts, p.tr.kr.LookupHash(number), app, when, sms.MaskPhone(number))
	}, func(br pgx.BatchResults) error {
		return br.QueryRow().Scan(&removed)
	})
	if err != nil {
		return 0, err
	}
	if removed == 0 {
		return 0, store.ErrNotFound
	}
	return removed, nil
}

// ListOptOuts lists the opt-outs app recorded with a Seq greater than after, in Seq order.
func (p *Postgres) ListOptOuts(ctx context.Context, app string, after int64, limit int) ([]store.OptOut, error) {
	if p.closed.Load() {
		return nil, store.ErrClosed
	}
	if limit <= 0 {
		return nil, invalid("limit must be positive")
	}
	rows, err := p.pool.Query(ctx, qListOptOuts, app, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list opt-outs: %w", err)
	}
	defer rows.Close()
	out := []store.OptOut{}
	for rows.Next() {
		var o store.OptOut
		var at int64
		if err := rows.Scan(&o.Seq, &o.Number, &o.Scope, &o.App, &o.Source, &at); err != nil {
			return nil, fmt.Errorf("store: list opt-outs: %w", err)
		}
		o.CreatedAt = fromNanos(at)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list opt-outs: %w", err)
	}
	return out, nil
}

// RecordConsent appends a consent record, which becomes the one in force for its app, number and
// category, with a "consent.recorded" audit event in the same transaction.
func (p *Postgres) RecordConsent(ctx context.Context, c store.Consent) (store.Consent, error) {
	if err := checkConsent(c); err != nil {
		return store.Consent{}, err
	}
	c.GrantedAt = time.Unix(0, orNow(c.GrantedAt).UnixNano())
	c.WithdrawnAt = time.Time{}
	data := mustJSON(consentAudit{Number: sms.MaskPhone(c.Number), Category: c.Category, Basis: c.Basis, Source: c.Source})
	err := p.w.submit(ctx, func(b *pgx.Batch) {
		b.Queue(qInsConsent, c.App, p.tr.kr.LookupHash(c.Number), c.Category, c.Basis, c.Source, c.GrantedAt.UnixNano(), data,
			sms.MaskPhone(c.Number))
	}, func(br pgx.BatchResults) error {
		return br.QueryRow().Scan(&c.Seq)
	})
	if err != nil {
		return store.Consent{}, err
	}
	return c, nil
}

// WithdrawConsent marks app's consent records in force for number and category as withdrawn at
// at (zero means now), with a "consent.withdrawn" audit event in the same transaction. It returns
// how many records it changed; none is store.ErrNotFound.
func (p *Postgres) WithdrawConsent(ctx context.Context, app, number, category string, at time.Time) (int, error) {
	if app == "" || number == "" || category == "" {
		return 0, invalid("withdrawing consent needs an app, a number and a category")
	}
	if err := checkText("a consent withdrawal", app, number, category); err != nil {
		return 0, err
	}
	when := orNow(at).UnixNano()
	var n int
	err := p.w.submit(ctx, func(b *pgx.Batch) {
		b.Queue(qWithdraw, when, app, p.tr.kr.LookupHash(number), category, sms.MaskPhone(number))
	}, func(br pgx.BatchResults) error {
		return br.QueryRow().Scan(&n)
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, store.ErrNotFound
	}
	return n, nil
}

// Consents returns every consent record app holds for number, oldest first.
func (p *Postgres) Consents(ctx context.Context, app, number string) ([]store.Consent, error) {
	if p.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := p.pool.Query(ctx, qConsentsOf, app, p.tr.kr.LookupHash(number))
	if err != nil {
		return nil, fmt.Errorf("store: consents: %w", err)
	}
	return scanConsents(rows, number)
}

// RecipientFacts returns the opt-out scopes of number and the consent record in force per app and
// category, for the policy's facts, read on one snapshot in one round trip.
func (p *Postgres) RecipientFacts(ctx context.Context, number string) (store.RecipientFacts, error) {
	if p.closed.Load() {
		return store.RecipientFacts{}, store.ErrClosed
	}
	b := &pgx.Batch{}
	b.Queue(readOnlyBegin)
	ref := p.tr.kr.LookupHash(number)
	b.Queue(qOptOutScopes, ref)
	b.Queue(qConsentsInForce, ref)
	b.Queue("COMMIT")
	br := p.pool.SendBatch(ctx, b)
	f, err := readFacts(br, number)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return store.RecipientFacts{}, fmt.Errorf("store: recipient facts: %w", err)
	}
	return f, nil
}

func readFacts(br pgx.BatchResults, number string) (store.RecipientFacts, error) {
	var f store.RecipientFacts
	if _, err := br.Exec(); err != nil {
		return f, err
	}
	rows, err := br.Query()
	if err != nil {
		return f, err
	}
	for rows.Next() {
		var scope string
		if err := rows.Scan(&scope); err != nil {
			rows.Close()
			return f, err
		}
		f.OptOutScopes = append(f.OptOutScopes, scope)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, err
	}
	rows, err = br.Query()
	if err != nil {
		return f, err
	}
	cs, err := scanConsents(rows, number)
	if err != nil {
		return f, err
	}
	if len(cs) > 0 {
		f.Consents = cs
	}
	return f, nil
}

// scanConsents reads consent rows in qConsentCols order, whose number column holds the lookup hash
// of number, and closes them.
func scanConsents(rows pgx.Rows, number string) ([]store.Consent, error) {
	defer rows.Close()
	var out []store.Consent
	for rows.Next() {
		var c store.Consent
		var granted, withdrawn int64
		if err := rows.Scan(&c.Seq, &c.App, &c.Number, &c.Category, &c.Basis, &c.Source, &granted, &withdrawn); err != nil {
			return nil, err
		}
		c.Number, c.GrantedAt, c.WithdrawnAt = number, fromNanos(granted), fromNanos(withdrawn)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
