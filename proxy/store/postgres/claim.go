package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smsproxy/smsproxy/proxy/store"
)

// OutboxClaimer is the optional ability of a store that several replicas share to hand each
// outbox row to one replica at a time. PendingOutbox lists every row to whoever asks, which is
// right for one process and wrong for several: two replicas sweeping the outbox after a restart
// would both dispatch the same message (the provider's idempotency key keeps it from being sent
// twice, but both would spend a send attempt). A dispatcher that finds this ability claims rows
// instead of listing them:
//
//	if c, ok := st.(postgres.OutboxClaimer); ok {
//		items, err = c.ClaimOutbox(ctx, replicaID, 256, time.Minute)
//	}
type OutboxClaimer interface {
	// ClaimOutbox claims up to limit outbox rows that are due, in message id order, for owner
	// until lease has passed, and returns them.
	ClaimOutbox(ctx context.Context, owner string, limit int, lease time.Duration) ([]store.OutboxItem, error)
	// ReleaseOutbox gives up owner's claims on the given rows before their lease ends.
	ReleaseOutbox(ctx context.Context, owner string, ids []string) error
}

var _ OutboxClaimer = (*Postgres)(nil)

// dbNow is the database's clock in unix nanoseconds: leases are timed on one clock for every
// replica, whatever their own clocks say.
const dbNow = `(extract(epoch FROM statement_timestamp()) * 1000000000)::bigint`

// qClaim takes due rows that nobody holds or whose lease ended, skipping rows another transaction
// is claiming at this moment, and stamps them with owner.
const qClaim = `WITH c AS (
  SELECT message_id FROM outbox
  WHERE next_attempt_at <= $3 AND claimed_until <= ` + dbNow + `
  ORDER BY message_id LIMIT $2
  FOR UPDATE SKIP LOCKED
)
UPDATE outbox o SET claimed_by = $1, claimed_until = ` + dbNow + ` + $4
FROM c WHERE o.message_id = c.message_id
RETURNING o.message_id, o.payload, o.attempts, o.created_at, o.next_attempt_at, o.subject_ref, o.maybe_sent`

// ClaimOutbox claims for owner up to limit outbox rows whose next attempt is due (by this
// process's clock, the one RecordRetry's times come from), in message id order, and returns them.
// A row stays owner's until lease has passed on the database's clock, until RecordSent,
// RecordFailed or RecordRetry is recorded for it, or until ReleaseOutbox; meanwhile nobody, owner
// included, claims it again, so a replica with many rows in flight still gets new ones. A replica
// that restarts under the same owner name gets its old rows back when their lease ends. Rows
// another replica is claiming at the same instant are skipped, not waited for.
func (p *Postgres) ClaimOutbox(ctx context.Context, owner string, limit int, lease time.Duration) ([]store.OutboxItem, error) {
	if p.closed.Load() {
		return nil, store.ErrClosed
	}
	switch {
	case owner == "" || len(owner) > 200:
		return nil, invalid("a claim needs an owner of at most 200 bytes")
	case limit <= 0:
		return nil, invalid("limit must be positive")
	case lease <= 0:
		return nil, invalid("a claim needs a positive lease")
	}
	if err := checkText("the owner", owner); err != nil {
		return nil, err
	}
	rows, err := p.pool.Query(ctx, qClaim, owner, limit, time.Now().UnixNano(), lease.Nanoseconds())
	if err != nil {
		return nil, fmt.Errorf("store: claim outbox: %w", err)
	}
	items, refs, err := scanOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("store: claim outbox: %w", err)
	}
	if items, err = p.openOutbox(ctx, items, refs); err != nil {
		return nil, err
	}
	slices.SortFunc(items, func(a, b store.OutboxItem) int { return strings.Compare(a.MessageID, b.MessageID) })
	return items, nil
}

// ReleaseOutbox gives up owner's claims on the rows of the given message ids, so that another
// replica may take them at once (on shutdown, say). Rows owner does not hold are left alone.
func (p *Postgres) ReleaseOutbox(ctx context.Context, owner string, ids []string) error {
	if p.closed.Load() {
		return store.ErrClosed
	}
	if owner == "" {
		return invalid("a release needs an owner")
	}
	if len(ids) == 0 {
		return nil
	}
	if err := checkText("the release", append([]string{owner}, ids...)...); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, `UPDATE outbox SET claimed_by = NULL, claimed_until = 0 WHERE claimed_by = $1 AND message_id = ANY($2)`,
		owner, ids)
	if err != nil {
		return fmt.Errorf("store: release outbox: %w", err)
	}
	return nil
}
