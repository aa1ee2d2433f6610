package postgres

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smsproxy/smsproxy/proxy/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the advisory lock key of the schema's migrations: one per schema, so that
// replicas starting together migrate a schema once while tests in other schemas go on.
const migrationLock = `SELECT pg_advisory_xact_lock(hashtext('smsproxy.migrate.' || COALESCE(current_schema(), '')))`

// migrate applies the migrations the database has not seen yet, all in one transaction that holds
// the schema's advisory lock, and records them in schema_migrations. A database with a version
// newer than the build knows is refused with code "schema_too_new".
func migrate(ctx context.Context, pool *pgxpool.Pool, ms []store.Migration) (applied int, err error) {
	fail := func(what string, err error) (int, error) {
		return 0, &store.Error{Code: store.CodeMigrationFailed, Message: what + ": " + err.Error()}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fail("cannot begin the migration transaction", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, migrationLock); err != nil {
		return fail("cannot take the migration lock", err)
	}
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer NOT NULL PRIMARY KEY,
    name       text    NOT NULL,
    applied_at bigint  NOT NULL
)`
	if _, err := tx.Exec(ctx, create); err != nil {
		return fail("cannot create schema_migrations", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fail("cannot read schema_migrations", err)
	}
	if current > len(ms) {
		return 0, &store.Error{Code: store.CodeSchemaTooNew, Message: fmt.Sprintf(
			"the database has schema version %d but this build knows only up to %d; use a newer release", current, len(ms))}
	}
	for _, m := range ms[current:] {
		if err := applyMigration(ctx, tx, m); err != nil {
			return fail(fmt.Sprintf("migration %04d_%s", m.Version, m.Name), err)
		}
		applied++
	}
	if err := tx.Commit(ctx); err != nil {
		return fail("cannot commit the migrations", err)
	}
	return applied, nil
}

func applyMigration(ctx context.Context, tx pgx.Tx, m store.Migration) error {
	// Exec without arguments uses the simple protocol, which runs a file of several statements.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.Version, m.Name, time.Now().UnixNano())
	return err
}
