package audit

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
)

// ErrNoSubjectKey is what SubjectKeys.Get returns when no key is stored for a subject (never created,
// or erased).
var ErrNoSubjectKey = errors.New("audit: no subject key")

// ErrSubjectKeyExists is what SubjectKeys.Put returns when a key is already stored for the subject.
var ErrSubjectKeyExists = errors.New("audit: subject key exists")

// SubjectKeys stores wrapped subject keys; the store implements it over one table keyed by ref.
//
// Get returns the wrapped key and the id of the data key that wrapped it, or ErrNoSubjectKey.
// Put inserts a key and must not overwrite: if ref already has one it returns ErrSubjectKeyExists (the
// Sealer then reads the stored one), so two writers racing to create a subject's key agree on one.
// Delete removes the key; deleting a missing key is not an error. Delete is the erasure: it must
// really remove the row (and the store should VACUUM or let pages be reused in time).
type SubjectKeys interface {
	Get(ctx context.Context, ref string) (wrapped []byte, keyID string, err error)
	Put(ctx context.Context, ref string, wrapped []byte, keyID string) error
	Delete(ctx context.Context, ref string) error
}

// Sealed and wrapped formats. Both start with a version byte.
//
//	wrapped subject key: 0x01 | nonce(12) | AES-256-GCM_dataKey(subjectKey(32)), AAD = wrapDomain|ref|keyID
//	sealed field:        0x01 | kid(8) | nonce(12) | AES-256-GCM_subjectKey(plaintext), AAD = sealDomain|aad
//
// kid is the first 8 bytes of SHA-256(kidDomain|subjectKey): it tells a record sealed under an erased
// (and since replaced) subject key from a corrupt one without revealing anything about the key.
const (
	formatV1    = 1
	nonceSize   = 12
	kidSize     = 8
	sealHeader  = 1 + kidSize + nonceSize
	wrapDomain  = "smsproxy.audit.subject-key.v1\x00"
	sealDomain  = "smsproxy.audit.sealed.v1\x00"
	kidDomain   = "smsproxy.audit.kid.v1\x00"
	aadDomain   = "smsproxy.audit.aad.v1\x00"
	lockStripes = 64
)

// SealAAD returns the associated data that binds a sealed field to its record: the sequence number,
// kind and message id. A sealed field moved to another record no longer opens.
func SealAAD(seq int64, kind, messageID string) []byte {
	b := make([]byte, 0, len(aadDomain)+8+8+len(kind)+len(messageID))
	b = append(b, aadDomain...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = appendField(b, kind)
	return appendField(b, messageID)
}

// SubjectKey is one subject's unwrapped key, ready to seal and open without I/O. It is safe for
// concurrent use.
type SubjectKey struct {
	ref  string
	kid  [kidSize]byte
	aead cipher.AEAD
}

// Ref returns the subject reference (lookup hash) the key belongs to.
func (k *SubjectKey) Ref() string { return k.ref }

// Seal encrypts plaintext with AES-256-GCM under the subject key with a random nonce, bound to aad
// (use SealAAD). A subject key seals far fewer than 2^32 fields, so random nonces are safe.
func (k *SubjectKey) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, sealHeader, sealHeader+len(plaintext)+k.aead.Overhead())
	out[0] = formatV1
	copy(out[1:], k.kid[:])
	if _, err := rand.Read(out[1+kidSize : sealHeader]); err != nil {
		return nil, newErr(CodeSealedInvalid, "cannot read random bytes", err)
	}
	return k.aead.Seal(out, out[1+kidSize:sealHeader], plaintext, sealAAD(aad)), nil
}

// Open decrypts what Seal returned for the same aad. A field sealed under an earlier key of the same
// subject (erased, then recreated) fails with code "subject_erased"; anything else that does not
// authenticate fails with "sealed_invalid".
func (k *SubjectKey) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < sealHeader+k.aead.Overhead() || sealed[0] != formatV1 {
		return nil, newErr(CodeSealedInvalid, "the sealed field is malformed", nil)
	}
	if string(sealed[1:1+kidSize]) != string(k.kid[:]) {
		return nil, newErr(CodeSubjectErased, "the subject key that sealed this field was erased", nil)
	}
	pt, err := k.aead.Open(nil, sealed[1+kidSize:sealHeader], sealed[sealHeader:], sealAAD(aad))
	if err != nil {
		return nil, newErr(CodeSealedInvalid, "the sealed field does not authenticate (altered, or bound to another record)", nil)
	}
	return pt, nil
}

func sealAAD(aad []byte) []byte {
	b := make([]byte, 0, len(sealDomain)+len(aad))
	return append(append(b, sealDomain...), aad...)
}

func newSubjectKey(ref string, raw []byte) (*SubjectKey, error) {
	aead, err := newGCM(raw)
	if err != nil {
		return nil, err
	}
	k := &SubjectKey{ref: ref, aead: aead}
	s := sha256.Sum256(append([]byte(kidDomain), raw...))
	copy(k.kid[:], s[:kidSize])
	return k, nil
}

// SealerOptions tunes a Sealer.
type SealerOptions struct {
	// CacheSize is how many unwrapped subject keys stay in memory; 0 means 10,000. A cached key,
	// with its prepared AES-GCM, takes about 1 KB (measured), so the default holds about 10 MB: the
	// keys of the messages of the last seconds, which seal and open their events and outbox rows.
	// A recipient's key is read again (one indexed read, often together with the recipient's facts)
	// when it comes back later.
	CacheSize int
}

// Sealer seals and opens personal fields under per-subject keys that it creates on first use, wraps
// with the keyring's active data key and keeps in a SubjectKeys store, with a bounded LRU cache of
// unwrapped keys in front. It is safe for concurrent use.
//
// The cache is per process: with several replicas sharing one store, an erasure on one replica is
// seen by the others when the key leaves their caches; erase on every replica (or size caches
// small) where that matters. A single-process region sees erasures at once.
type Sealer struct {
	kr    *Keyring
	keys  SubjectKeys
	cache *lru.Cache[string, *SubjectKey]
	seed  maphash.Seed
	locks [lockStripes]sync.Mutex
}

// NewSealer returns a Sealer over keys, wrapping subject keys with kr's data keys.
func NewSealer(kr *Keyring, keys SubjectKeys, opts SealerOptions) (*Sealer, error) {
	if kr == nil || keys == nil {
		return nil, newErr(CodeKeyringInvalid, "a sealer needs a keyring and a subject key store", nil)
	}
	size := opts.CacheSize
	if size <= 0 {
		size = 10_000
	}
	c, err := lru.New[string, *SubjectKey](size)
	if err != nil {
		return nil, newErr(CodeKeyringInvalid, "cannot make the subject key cache", err)
	}
	return &Sealer{kr: kr, keys: keys, cache: c, seed: maphash.MakeSeed()}, nil
}

// lock serialises cache misses, creation and erasure of one subject (striped by ref), so that a key
// being erased cannot be put back into the cache by a concurrent miss.
func (s *Sealer) lock(ref string) *sync.Mutex {
	return &s.locks[maphash.String(s.seed, ref)%lockStripes]
}

// Key returns ref's subject key, creating, wrapping and storing one if the subject has none. It may
// call the SubjectKeys store, so call it outside the store's write transaction; then seal with the
// returned key inside it.
func (s *Sealer) Key(ctx context.Context, ref string) (*SubjectKey, error) {
	return s.key(ctx, ref, true)
}

func (s *Sealer) key(ctx context.Context, ref string, create bool) (*SubjectKey, error) {
	if ref == "" {
		return nil, newErr(CodeSubjectRefMissing, "a sealed field needs a subject reference", nil)
	}
	if k, ok := s.cache.Get(ref); ok {
		return k, nil
	}
	mu := s.lock(ref)
	mu.Lock()
	defer mu.Unlock()
	if k, ok := s.cache.Get(ref); ok {
		return k, nil
	}
	for range 2 {
		wrapped, keyID, err := s.keys.Get(ctx, ref)
		if err == nil {
			k, err := s.unwrap(ref, wrapped, keyID)
			if err != nil {
				return nil, err
			}
			s.cache.Add(ref, k)
			return k, nil
		}
		if !errors.Is(err, ErrNoSubjectKey) {
			return nil, newErr(CodeSubjectKeyStore, "cannot read the subject key", err)
		}
		if !create {
			return nil, newErr(CodeSubjectErased, "the subject has no key: it was erased or never had sealed data", nil)
		}
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, newErr(CodeSubjectKeyStore, "cannot read random bytes", err)
		}
		wrapped, err = s.wrap(ref, raw)
		if err != nil {
			return nil, err
		}
		err = s.keys.Put(ctx, ref, wrapped, s.kr.active)
		if errors.Is(err, ErrSubjectKeyExists) {
			continue // another writer created it first: use theirs
		}
		if err != nil {
			return nil, newErr(CodeSubjectKeyStore, "cannot store the subject key", err)
		}
		k, err := newSubjectKey(ref, raw)
		if err != nil {
			return nil, newErr(CodeSubjectKeyStore, "cannot use the subject key", err)
		}
		s.cache.Add(ref, k)
		return k, nil
	}
	return nil, newErr(CodeSubjectKeyStore, "the subject key store reports a key exists but has none", nil)
}

func wrapAAD(ref, keyID string) []byte {
	b := make([]byte, 0, len(wrapDomain)+8+len(ref)+len(keyID))
	b = append(b, wrapDomain...)
	b = appendField(b, ref)
	return appendField(b, keyID)
}

func (s *Sealer) wrap(ref string, raw []byte) ([]byte, error) {
	aead := s.kr.dataKeys[s.kr.active]
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(raw)+aead.Overhead())
	out[0] = formatV1
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, newErr(CodeSubjectKeyStore, "cannot read random bytes", err)
	}
	return aead.Seal(out, out[1:], raw, wrapAAD(ref, s.kr.active)), nil
}

func (s *Sealer) unwrap(ref string, wrapped []byte, keyID string) (*SubjectKey, error) {
	aead, ok := s.kr.dataKeys[keyID]
	if !ok {
		return nil, newErr(CodeKeyUnknown, "the subject key is wrapped with data key "+keyID+", which the keyring does not have", nil)
	}
	if len(wrapped) < 1+nonceSize+aead.Overhead() || wrapped[0] != formatV1 {
		return nil, newErr(CodeSealedInvalid, "the stored subject key is malformed", nil)
	}
	raw, err := aead.Open(nil, wrapped[1:1+nonceSize], wrapped[1+nonceSize:], wrapAAD(ref, keyID))
	if err != nil || len(raw) != 32 {
		return nil, newErr(CodeSealedInvalid, "the stored subject key does not authenticate under data key "+keyID, nil)
	}
	k, err := newSubjectKey(ref, raw)
	if err != nil {
		return nil, newErr(CodeSealedInvalid, "the stored subject key is unusable", err)
	}
	return k, nil
}

// Seal seals plaintext for subject ref, creating the subject's key on first use.
func (s *Sealer) Seal(ctx context.Context, ref string, plaintext, aad []byte) ([]byte, error) {
	k, err := s.Key(ctx, ref)
	if err != nil {
		return nil, err
	}
	return k.Seal(plaintext, aad)
}

// Open opens a field sealed for subject ref. It never creates a key: an erased subject fails with code
// "subject_erased".
func (s *Sealer) Open(ctx context.Context, ref string, sealed, aad []byte) ([]byte, error) {
	k, err := s.key(ctx, ref, false)
	if err != nil {
		return nil, err
	}
	return k.Open(sealed, aad)
}

// Erase destroys subject ref's key (crypto-shredding): every field sealed for the subject becomes
// unreadable for good, while the records and the chain stay intact. Append a KindSubjectErased event
// afterwards. Sealing for ref later creates a new, unrelated key. A *SubjectKey already returned by Key
// stays usable by whoever holds it, so hold one only for the write it was fetched for.
func (s *Sealer) Erase(ctx context.Context, ref string) error {
	return s.EraseWith(ctx, ref, func(ctx context.Context) error { return s.keys.Delete(ctx, ref) })
}

// EraseWith is Erase with destroy in place of the SubjectKeys store's Delete: a store whose
// erasure writes more than the key's deletion (its record of the erasure, masked copies of the
// subject's data) does it all in one transaction there. destroy must delete ref's stored key; it
// runs under the lock that keeps a concurrent Key from caching the key again, and the key leaves
// the cache once destroy has returned nil.
func (s *Sealer) EraseWith(ctx context.Context, ref string, destroy func(ctx context.Context) error) error {
	if ref == "" {
		return newErr(CodeSubjectRefMissing, "erasure needs a subject reference", nil)
	}
	mu := s.lock(ref)
	mu.Lock()
	defer mu.Unlock()
	if err := destroy(ctx); err != nil {
		return newErr(CodeSubjectKeyStore, "cannot delete the subject key", err)
	}
	s.cache.Remove(ref)
	return nil
}

// SubjectKeyReplacer is the optional ability of a SubjectKeys store to replace a stored key in one
// atomic write (an UPDATE). Rewrap needs it: deleting then putting could lose the key in between.
type SubjectKeyReplacer interface {
	Replace(ctx context.Context, ref string, wrapped []byte, keyID string) error
}

// Rewrap rewraps ref's stored key under the active data key if an older data key wrapped it, and
// reports whether it did. Rotation never needs it (old data keys keep opening what they wrapped); a
// rotation job uses it to empty an old data key before removing it from the keyring. The store must
// implement SubjectKeyReplacer.
func (s *Sealer) Rewrap(ctx context.Context, ref string) (bool, error) {
	r, ok := s.keys.(SubjectKeyReplacer)
	if !ok {
		return false, newErr(CodeSubjectKeyStore, "the subject key store cannot replace keys", nil)
	}
	mu := s.lock(ref)
	mu.Lock()
	defer mu.Unlock()
	wrapped, keyID, err := s.keys.Get(ctx, ref)
	if errors.Is(err, ErrNoSubjectKey) {
		return false, nil
	}
	if err != nil {
		return false, newErr(CodeSubjectKeyStore, "cannot read the subject key", err)
	}
	if keyID == s.kr.active {
		return false, nil
	}
	aead, ok := s.kr.dataKeys[keyID]
	if !ok {
		return false, newErr(CodeKeyUnknown, "the subject key is wrapped with data key "+keyID+", which the keyring does not have", nil)
	}
	if len(wrapped) < 1+nonceSize+aead.Overhead() || wrapped[0] != formatV1 {
		return false, newErr(CodeSealedInvalid, "the stored subject key is malformed", nil)
	}
	raw, err := aead.Open(nil, wrapped[1:1+nonceSize], wrapped[1+nonceSize:], wrapAAD(ref, keyID))
	if err != nil {
		return false, newErr(CodeSealedInvalid, "the stored subject key does not authenticate under data key "+keyID, nil)
	}
	nw, err := s.wrap(ref, raw)
	if err != nil {
		return false, err
	}
	if err := r.Replace(ctx, ref, nw, s.kr.active); err != nil {
		return false, newErr(CodeSubjectKeyStore, "cannot replace the subject key", err)
	}
	return true, nil
}

// MemSubjectKeys is an in-memory SubjectKeys for tests and tools. It is safe for concurrent use.
type MemSubjectKeys struct {
	mu sync.Mutex
	m  map[string]memKey
}

type memKey struct {
	wrapped []byte
	keyID   string
}

// NewMemSubjectKeys returns an empty in-memory store.
func NewMemSubjectKeys() *MemSubjectKeys { return &MemSubjectKeys{m: map[string]memKey{}} }

var _ SubjectKeys = (*MemSubjectKeys)(nil)

// Get returns ref's wrapped key or ErrNoSubjectKey.
func (m *MemSubjectKeys) Get(_ context.Context, ref string) ([]byte, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.m[ref]
	if !ok {
		return nil, "", ErrNoSubjectKey
	}
	return append([]byte(nil), k.wrapped...), k.keyID, nil
}

// Put stores ref's wrapped key, or returns ErrSubjectKeyExists.
func (m *MemSubjectKeys) Put(_ context.Context, ref string, wrapped []byte, keyID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[ref]; ok {
		return ErrSubjectKeyExists
	}
	m.m[ref] = memKey{wrapped: append([]byte(nil), wrapped...), keyID: keyID}
	return nil
}

// Delete removes ref's key.
func (m *MemSubjectKeys) Delete(_ context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, ref)
	return nil
}

// Replace overwrites ref's key; it implements SubjectKeyReplacer.
func (m *MemSubjectKeys) Replace(_ context.Context, ref string, wrapped []byte, keyID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[ref]; !ok {
		return ErrNoSubjectKey
	}
	m.m[ref] = memKey{wrapped: append([]byte(nil), wrapped...), keyID: keyID}
	return nil
}

// KeyID returns the id of the data key that wrapped ref's key, or "".
func (m *MemSubjectKeys) KeyID(ref string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[ref].keyID
}

// Len returns how many subject keys are stored.
func (m *MemSubjectKeys) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}
