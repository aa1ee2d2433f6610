package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migration is one numbered schema change read from an embedded directory. Both backends (SQLite here,
// PostgreSQL in package postgres) read theirs with LoadMigrations and apply them in their own way.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads the files named NNNN_name.sql in dir of fsys, in version order. Versions
// must start at 1 and have no gaps, so that a missing file is caught at build time by the tests.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || name == "" {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %d (%s) is out of sequence: want version %d", m.Version, m.Name, i+1)
		}
	}
	return ms, nil
}

// migrate applies the migrations the database has not seen yet, each in its own transaction, and
// records them in schema_migrations. A database with a version newer than the code knows is refused.
func migrate(ctx context.Context, conn *sql.Conn, ms []Migration) (applied int, err error) {
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
)`
	if _, err := conn.ExecContext(ctx, create); err != nil {
		return 0, &Error{Code: CodeMigrationFailed, Message: "cannot create schema_migrations: " + err.Error()}
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, &Error{Code: CodeMigrationFailed, Message: "cannot read schema_migrations: " + err.Error()}
	}
	if current > len(ms) {
		return 0, &Error{Code: CodeSchemaTooNew, Message: fmt.Sprintf(
			"the database has schema version %d but this build knows only up to %d; use a newer release", current, len(ms))}
	}
	for _, m := range ms[current:] {
		if err := applyMigration(ctx, conn, m); err != nil {
			return applied, &Error{Code: CodeMigrationFailed, Message: fmt.Sprintf("migration %04d_%s: %v", m.Version, m.Name, err)}
		}
		applied++
	}
	return applied, nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, m Migration) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if _, err := conn.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UnixNano()); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}
