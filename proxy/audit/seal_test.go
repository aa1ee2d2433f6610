package audit

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
)

func newSealer(t *testing.T, kr *Keyring, keys SubjectKeys) *Sealer {
	t.Helper()
	s, err := NewSealer(kr, keys, SealerOptions{CacheSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	kr, _ := GenerateKeyring("sg", testNow)
	keys := NewMemSubjectKeys()
	s := newSealer(t, kr, keys)
	ref := kr.LookupHash("+6591234567")
	pt := []byte(`{"to":"+6591234567","body":"Your code is 123456"}`)
	aad := SealAAD(7, "message.accepted", "msg_1")
	sealed, err := s.Seal(ctx, ref, pt, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("6591234567")) || bytes.Contains(sealed, []byte("123456")) {
		t.Fatal("sealed field contains plaintext")
	}
	again, _ := s.Seal(ctx, ref, pt, aad)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same field are identical: nonces repeat")
	}
	if keys.Len() != 1 {
		t.Fatalf("%d subject keys stored, want 1", keys.Len())
	}
	cold := newSealer(t, kr, keys) // another process over the same store: empty cache
	tests := []struct {
		name   string
		sealer *Sealer
		ref    string
		sealed []byte
		aad    []byte
		code   string
	}{
		{"same process", s, ref, sealed, aad, ""},
		{"cold cache", cold, ref, sealed, aad, ""},
		{"moved to another seq", s, ref, sealed, SealAAD(8, "message.accepted", "msg_1"), CodeSealedInvalid},
		{"moved to another message", s, ref, sealed, SealAAD(7, "message.accepted", "msg_2"), CodeSealedInvalid},
		{"moved to another subject", s, kr.LookupHash("+6591234568"), sealed, aad, CodeSubjectErased},
		{"bit flipped", s, ref, flip(sealed, len(sealed)-1), aad, CodeSealedInvalid},
		{"truncated", s, ref, sealed[:20], aad, CodeSealedInvalid},
		{"unknown version", s, ref, append([]byte{9}, sealed[1:]...), aad, CodeSealedInvalid},
		{"no subject", s, "", sealed, aad, CodeSubjectRefMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sealer.Open(ctx, tt.ref, tt.sealed, tt.aad)
			if tt.code == "" {
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("Open = %q, %v", got, err)
				}
				return
			}
			if CodeOf(err) != tt.code {
				t.Fatalf("Open error %v, want %s", err, tt.code)
			}
		})
	}
	if keys.Len() != 1 {
		t.Fatal("Open created a subject key")
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestEraseShredsOnlyThatSubject(t *testing.T) {
	ctx := context.Background()
	kr, _ := GenerateKeyring("sg", testNow)
	keys := NewMemSubjectKeys()
	s := newSealer(t, kr, keys)
	alice, bob := kr.LookupHash("+6591234567"), kr.LookupHash("+6598765432")
	aad := SealAAD(1, "message.accepted", "msg_1")
	a, _ := s.Seal(ctx, alice, []byte("alice"), aad)
	b, _ := s.Seal(ctx, bob, []byte("bob"), aad)
	if err := s.Erase(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, alice, a, aad); CodeOf(err) != CodeSubjectErased {
		t.Fatalf("erased subject opened: %v", err)
	}
	if got, err := s.Open(ctx, bob, b, aad); err != nil || string(got) != "bob" {
		t.Fatalf("other subject: %q, %v", got, err)
	}
	// New data for the same number gets a new key; the old fields stay shredded.
	a2, err := s.Seal(ctx, alice, []byte("alice again"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Open(ctx, alice, a2, aad); err != nil || string(got) != "alice again" {
		t.Fatalf("new field: %q, %v", got, err)
	}
	if _, err := s.Open(ctx, alice, a, aad); CodeOf(err) != CodeSubjectErased {
		t.Fatalf("field sealed before the erasure: %v, want subject_erased", err)
	}
	if err := s.Erase(ctx, kr.LookupHash("+10000000000")); err != nil {
		t.Fatalf("erasing an unknown subject: %v", err)
	}
}

func TestDataKeyRotation(t *testing.T) {
	ctx := context.Background()
	kr1, _ := GenerateKeyring("sg", testNow)
	keys := NewMemSubjectKeys()
	old := kr1.LookupHash("+6591234567")
	aad := SealAAD(1, "k", "m")
	sealed, _ := newSealer(t, kr1, keys).Seal(ctx, old, []byte("old"), aad)

	kr2, err := kr1.WithNewDataKey(testNow.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	s2 := newSealer(t, kr2, keys)
	if got, err := s2.Open(ctx, old, sealed, aad); err != nil || string(got) != "old" {
		t.Fatalf("field under the old data key after rotation: %q, %v", got, err)
	}
	fresh := kr2.LookupHash("+6598765432")
	if _, err := s2.Seal(ctx, fresh, []byte("new"), aad); err != nil {
		t.Fatal(err)
	}
	if keys.KeyID(fresh) != kr2.ActiveDataKeyID() || keys.KeyID(old) != kr1.ActiveDataKeyID() {
		t.Fatalf("key ids: fresh %s old %s", keys.KeyID(fresh), keys.KeyID(old))
	}
	// The old keyring cannot open what the new data key wrapped.
	if _, err := newSealer(t, kr1, keys).Open(ctx, fresh, nil, aad); CodeOf(err) != CodeKeyUnknown {
		t.Fatalf("old keyring on a new subject key: %v", err)
	}
	// Rewrap moves the old subject onto the active key; its fields still open.
	if did, err := s2.Rewrap(ctx, old); err != nil || !did {
		t.Fatalf("Rewrap = %v, %v", did, err)
	}
	if did, _ := s2.Rewrap(ctx, old); did {
		t.Fatal("second Rewrap rewrapped again")
	}
	if keys.KeyID(old) != kr2.ActiveDataKeyID() {
		t.Fatal("rewrap did not record the new key id")
	}
	if got, err := newSealer(t, kr2, keys).Open(ctx, old, sealed, aad); err != nil || string(got) != "old" {
		t.Fatalf("after rewrap: %q, %v", got, err)
	}
}

// racyKeys holds the first n Gets until all n have arrived and answers them with a miss, so that n
// concurrent sealers all try to create the same subject's key.
type racyKeys struct {
	*MemSubjectKeys
	mu      sync.Mutex
	n       int
	arrived chan struct{}
}

func (r *racyKeys) Get(ctx context.Context, ref string) ([]byte, string, error) {
	r.mu.Lock()
	held := r.n > 0
	if held {
		r.n--
		if r.n == 0 {
			close(r.arrived)
		}
	}
	r.mu.Unlock()
	if held {
		<-r.arrived
		return nil, "", ErrNoSubjectKey
	}
	return r.MemSubjectKeys.Get(ctx, ref)
}

func TestConcurrentCreationAgreesOnOneKey(t *testing.T) {
	ctx := context.Background()
	kr, _ := GenerateKeyring("sg", testNow)
	const n = 4 // four processes sharing one store
	keys := &racyKeys{MemSubjectKeys: NewMemSubjectKeys(), n: n, arrived: make(chan struct{})}
	ref := kr.LookupHash("+6591234567")
	aad := SealAAD(1, "k", "m")
	sealed := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		s := newSealer(t, kr, keys)
		wg.Go(func() {
			b, err := s.Seal(ctx, ref, []byte("x"), aad)
			if err != nil {
				t.Error(err)
			}
			sealed[i] = b
		})
	}
	wg.Wait()
	if keys.Len() != 1 {
		t.Fatalf("%d keys stored", keys.Len())
	}
	reader := newSealer(t, kr, keys.MemSubjectKeys)
	for i, b := range sealed {
		if _, err := reader.Open(ctx, ref, b, aad); err != nil {
			t.Fatalf("sealer %d used a key that was not stored: %v", i, err)
		}
	}
}

type failingKeys struct{ MemSubjectKeys }

func (f *failingKeys) Get(context.Context, string) ([]byte, string, error) {
	return nil, "", errors.New("disk on fire")
}

func TestStoreErrorsAreCoded(t *testing.T) {
	kr, _ := GenerateKeyring("sg", testNow)
	s := newSealer(t, kr, &failingKeys{})
	_, err := s.Seal(context.Background(), "ref", []byte("x"), nil)
	if CodeOf(err) != CodeSubjectKeyStore {
		t.Fatalf("got %v", err)
	}
	if _, err := NewSealer(nil, nil, SealerOptions{}); err == nil {
		t.Fatal("NewSealer without a keyring")
	}
}
