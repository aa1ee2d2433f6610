// Package audit is the cryptographic core of a region's audit trail: hash-chained events,
// Ed25519-signed checkpoints that also anchor retention purges, envelope encryption of personal
// fields under per-subject keys (so erasing a subject is destroying one key), keyed lookup hashes of
// phone numbers, and a streaming verifier that names the first bad record.
//
// The package does no I/O of its own beyond loading a keyring; a store persists what it produces.
//
// # How a store uses it
//
// Keys. Load the region's keys once at start with LoadKeyring("file:/run/secrets/audit-keys.json")
// or LoadKeyring("env:SMSPROXY_AUDIT_KEYS"). Config files hold only that reference, never key text.
//
// Subject keys. The store implements SubjectKeys over a table
//
//	subject_keys(ref TEXT PRIMARY KEY, key_id TEXT NOT NULL, wrapped BLOB NOT NULL)
//
// where Put is an INSERT that fails with ErrSubjectKeyExists when the row exists (never an upsert),
// and builds one Sealer with NewSealer(keyring, subjectKeys, SealerOptions{}).
//
// Appending (the group-commit writer). Seal before entering the writer transaction where possible:
// Sealer.Key(ctx, ref) may read or insert a subject key, so call it on the caller's goroutine
// (Submit, receipt handling), and hand the *SubjectKey into the write operation. Inside the writer,
// per event, in commit order:
//
//	mark := chain.Head()                     // before each operation (its savepoint)
//	e.Seq = chain.Next()
//	if personal != nil {
//		e.Sealed, err = key.Seal(personal, audit.SealAAD(e.Seq, e.Kind, e.MessageID))
//		e.SubjectRef = key.Ref()
//	}
//	chain.Link(&e)                           // sets At precision, PrevHash, Hash
//	INSERT INTO audit(seq, at, kind, message_id, app, data, sealed, subject_ref, prev_hash, hash) …
//	// operation failed and was rolled back to its savepoint: chain.Reset(mark)
//	// whole batch rolled back: chain.Reset(headBeforeBatch)
//
// On open, the store resumes the chain with NewChain(region, Head{Seq, Hash} of the last row), or
// NewChain(region, Head{}) for an empty trail. Data must be stored byte for byte (TEXT or BLOB, never
// PostgreSQL jsonb, which rewrites JSON) and At with at least microsecond precision.
//
// Checkpoints. A background job, every N events or T seconds when the head moved, signs
// keyring.Checkpoint(head, anchor, now) and stores it in its own table. The anchor is the first
// retained record's (Seq, PrevHash), or Anchor{} while nothing was ever purged.
//
// Retention purge. In one transaction per batch: find the first record to keep (F), write a
// checkpoint whose anchor is (F.Seq, F.PrevHash), then delete the records with seq < F.Seq. The
// remaining trail verifies from that anchor; deleting more than that is reported as "truncated".
//
// Erasure. Sealer.EraseWith(ctx, ref, destroy) runs the store's destroy under the subject's lock:
// it deletes the subject key and, in the same transaction, appends a KindSubjectErased event with
// SubjectRef set and no personal data (Sealer.Erase deletes the key alone). Every sealed field of
// that subject now fails to open with code "subject_erased", and the chain still verifies because
// hashes cover ciphertext.
//
// Verification (smsproxy audit verify). NewVerifier with the region, the keyring's public keys and
// every stored checkpoint; Add each event in seq order; Finish returns a Report whose Problem names
// the first bad record.
package audit
