package audit

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// KeyringVersion is the version of the keyring JSON format this package reads and writes.
const KeyringVersion = 1

// maxKeyringSize bounds what LoadKeyring reads, so a wrong reference cannot make it read a huge file.
const maxKeyringSize = 1 << 20

// keyringFile is the JSON form of a keyring. Every key is standard base64.
//
//	{
//	  "version": 1,
//	  "region": "sg",
//	  "signing_key": {"id": "sig-20261127", "seed": "<32-byte Ed25519 seed>"},
//	  "retired_signing_keys": {"sig-20250101": "<32-byte Ed25519 public key>"},
//	  "data_keys": {"dk-20261127": "<32-byte AES-256 key>", "dk-20250101": "<…>"},
//	  "active_data_key": "dk-20261127",
//	  "lookup_key": "<32-byte HMAC-SHA256 key>"
//	}
//
// Retired signing keys are public keys only: they verify old checkpoints and sign nothing. Data keys
// are never removed while a wrapped subject key still names them.
type keyringFile struct {
	Version            int               `json:"version"`
	Region             string            `json:"region"`
	SigningKey         signingKeyFile    `json:"signing_key"`
	RetiredSigningKeys map[string]string `json:"retired_signing_keys,omitempty"`
	DataKeys           map[string]string `json:"data_keys"`
	ActiveDataKey      string            `json:"active_data_key"`
	LookupKey          string            `json:"lookup_key"`
}

type signingKeyFile struct {
	ID   string `json:"id"`
	Seed string `json:"seed"`
}

// Keyring holds one region's audit keys: the Ed25519 checkpoint signing key, the AES-256 data keys
// that wrap subject keys (one active, older ones kept to open what they wrapped) and the HMAC key of
// recipient lookups. A Keyring is safe for concurrent use and never prints its keys: String, GoString,
// LogValue and MarshalJSON describe it by key ids only; Export is the one way to get the keys out.
type Keyring struct {
	region     string
	signID     string
	signKey    ed25519.PrivateKey
	publicKeys map[string]ed25519.PublicKey
	dataKeys   map[string]cipher.AEAD
	rawData    map[string][]byte
	active     string
	lookupKey  []byte
	hmacs      sync.Pool
}

// LoadKeyring reads a keyring from a reference: "file:/path/to/keys.json" reads that file (which must
// not be writable by everyone), "env:NAME" reads the JSON from the environment variable NAME. Any other
// form is refused with code "keyring_ref_invalid": keys never come from configuration text.
func LoadKeyring(ref string) (*Keyring, error) {
	return loadKeyring(ref, os.LookupEnv)
}

func loadKeyring(ref string, lookupEnv func(string) (string, bool)) (*Keyring, error) {
	kind, arg, ok := strings.Cut(ref, ":")
	if !ok || arg == "" {
		return nil, newErr(CodeKeyringRef, `the keyring reference must be "file:<path>" or "env:<NAME>"`, nil)
	}
	var data []byte
	switch kind {
	case "file":
		f, err := os.Open(arg)
		if err != nil {
			return nil, newErr(CodeKeyringUnreadable, "cannot open the keyring file", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, newErr(CodeKeyringUnreadable, "cannot stat the keyring file", err)
		}
		if st.Mode().Perm()&0o002 != 0 {
			return nil, newErr(CodeKeyringUnreadable, "the keyring file is writable by everyone; refusing it", nil)
		}
		data, err = io.ReadAll(io.LimitReader(f, maxKeyringSize+1))
		if err != nil {
			return nil, newErr(CodeKeyringUnreadable, "cannot read the keyring file", err)
		}
	case "env":
		v, ok := lookupEnv(arg)
		if !ok || v == "" {
			return nil, newErr(CodeKeyringUnreadable, "the keyring environment variable "+arg+" is not set", nil)
		}
		data = []byte(v)
	default:
		return nil, newErr(CodeKeyringRef, `the keyring reference must be "file:<path>" or "env:<NAME>"`, nil)
	}
	if len(data) > maxKeyringSize {
		return nil, newErr(CodeKeyringInvalid, "the keyring is larger than 1 MiB", nil)
	}
	return parseKeyring(data)
}

// parseKeyring decodes and validates the JSON form. Its errors name fields and key ids, never values.
func parseKeyring(data []byte) (*Keyring, error) {
	var f keyringFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		// The JSON decoder's errors can quote input; keep only its class, not its text.
		return nil, newErr(CodeKeyringInvalid, "the keyring is not valid keyring JSON", nil)
	}
	if f.Version != KeyringVersion {
		return nil, newErr(CodeKeyringInvalid, "unsupported keyring version (want 1)", nil)
	}
	if err := checkName("region", f.Region); err != nil {
		return nil, err
	}
	if err := checkName("signing_key.id", f.SigningKey.ID); err != nil {
		return nil, err
	}
	seed, err := decodeKey("signing_key.seed", f.SigningKey.Seed, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	k := &Keyring{
		region:     f.Region,
		signID:     f.SigningKey.ID,
		signKey:    ed25519.NewKeyFromSeed(seed),
		publicKeys: map[string]ed25519.PublicKey{},
		dataKeys:   map[string]cipher.AEAD{},
		rawData:    map[string][]byte{},
		active:     f.ActiveDataKey,
	}
	k.publicKeys[k.signID] = k.signKey.Public().(ed25519.PublicKey)
	for id, v := range f.RetiredSigningKeys {
		if err := checkName("retired_signing_keys id", id); err != nil {
			return nil, err
		}
		if id == k.signID {
			return nil, newErr(CodeKeyringInvalid, "retired signing key "+id+" has the id of the active signing key", nil)
		}
		pub, err := decodeKey("retired_signing_keys."+id, v, ed25519.PublicKeySize)
		if err != nil {
			return nil, err
		}
		k.publicKeys[id] = pub
	}
	if len(f.DataKeys) == 0 {
		return nil, newErr(CodeKeyringInvalid, "data_keys is empty", nil)
	}
	for id, v := range f.DataKeys {
		if err := checkName("data_keys id", id); err != nil {
			return nil, err
		}
		raw, err := decodeKey("data_keys."+id, v, 32)
		if err != nil {
			return nil, err
		}
		if err := k.addDataKey(id, raw); err != nil {
			return nil, err
		}
	}
	if _, ok := k.dataKeys[k.active]; !ok {
		return nil, newErr(CodeKeyringInvalid, "active_data_key does not name one of data_keys", nil)
	}
	if k.lookupKey, err = decodeKey("lookup_key", f.LookupKey, 32); err != nil {
		return nil, err
	}
	k.initPool()
	return k, nil
}

func (k *Keyring) initPool() {
	k.hmacs.New = func() any { return hmac.New(sha256.New, k.lookupKey) }
}

func (k *Keyring) addDataKey(id string, raw []byte) error {
	aead, err := newGCM(raw)
	if err != nil {
		return newErr(CodeKeyringInvalid, "data key "+id+" is not a usable AES-256 key", nil)
	}
	k.dataKeys[id] = aead
	k.rawData[id] = raw
	return nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// checkName accepts key ids and region names: 1-64 printable ASCII characters without spaces.
func checkName(field, v string) error {
	if v == "" || len(v) > 64 || !utf8.ValidString(v) {
		return newErr(CodeKeyringInvalid, field+" must be 1-64 printable ASCII characters", nil)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return newErr(CodeKeyringInvalid, field+" must be 1-64 printable ASCII characters", nil)
		}
	}
	return nil
}

func decodeKey(field, v string, size int) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, newErr(CodeKeyringInvalid, field+" is not standard base64", nil)
	}
	if len(b) != size {
		return nil, newErr(CodeKeyringInvalid, field+" must decode to "+itoa(size)+" bytes", nil)
	}
	return b, nil
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// GenerateKeyring makes a fresh keyring for region with random keys and ids derived from now
// (for example "sig-20261127T101530Z"). It is what `smsproxy audit keygen` writes and what a
// development run uses when no keyring is configured.
func GenerateKeyring(region string, now time.Time) (*Keyring, error) {
	if err := checkName("region", region); err != nil {
		return nil, err
	}
	stamp := now.UTC().Format("20060102T150405Z")
	seed := make([]byte, ed25519.SeedSize)
	data := make([]byte, 32)
	lookup := make([]byte, 32)
	for _, b := range [][]byte{seed, data, lookup} {
		if _, err := rand.Read(b); err != nil {
			return nil, newErr(CodeKeyringInvalid, "cannot read random bytes", err)
		}
	}
	k := &Keyring{
		region:     region,
		signID:     "sig-" + stamp,
		signKey:    ed25519.NewKeyFromSeed(seed),
		publicKeys: map[string]ed25519.PublicKey{},
		dataKeys:   map[string]cipher.AEAD{},
		rawData:    map[string][]byte{},
		active:     "dk-" + stamp,
		lookupKey:  lookup,
	}
	k.publicKeys[k.signID] = k.signKey.Public().(ed25519.PublicKey)
	if err := k.addDataKey(k.active, data); err != nil {
		return nil, err
	}
	k.initPool()
	return k, nil
}

// WithNewDataKey returns a copy of k with a new random data key, id "dk-<now>", made active. The old
// data keys stay so that subject keys wrapped under them still open; nothing is rewritten. Write the
// result with Export and load it everywhere before relying on it.
func (k *Keyring) WithNewDataKey(now time.Time) (*Keyring, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, newErr(CodeKeyringInvalid, "cannot read random bytes", err)
	}
	id := "dk-" + now.UTC().Format("20060102T150405Z")
	if _, dup := k.dataKeys[id]; dup {
		return nil, newErr(CodeKeyringInvalid, "data key "+id+" already exists", nil)
	}
	n := &Keyring{
		region:     k.region,
		signID:     k.signID,
		signKey:    k.signKey,
		publicKeys: k.publicKeys,
		dataKeys:   map[string]cipher.AEAD{},
		rawData:    map[string][]byte{},
		active:     id,
		lookupKey:  k.lookupKey,
	}
	for oid, r := range k.rawData {
		if err := n.addDataKey(oid, r); err != nil {
			return nil, err
		}
	}
	if err := n.addDataKey(id, raw); err != nil {
		return nil, err
	}
	n.initPool()
	return n, nil
}

// Export returns the keyring's JSON form, keys included. Write it only to a file with mode 0600 or a
// secret store; never log it.
func (k *Keyring) Export() ([]byte, error) {
	f := keyringFile{
		Version:       KeyringVersion,
		Region:        k.region,
		SigningKey:    signingKeyFile{ID: k.signID, Seed: base64.StdEncoding.EncodeToString(k.signKey.Seed())},
		DataKeys:      map[string]string{},
		ActiveDataKey: k.active,
		LookupKey:     base64.StdEncoding.EncodeToString(k.lookupKey),
	}
	for id, pub := range k.publicKeys {
		if id == k.signID {
			continue
		}
		if f.RetiredSigningKeys == nil {
			f.RetiredSigningKeys = map[string]string{}
		}
		f.RetiredSigningKeys[id] = base64.StdEncoding.EncodeToString(pub)
	}
	for id, raw := range k.rawData {
		f.DataKeys[id] = base64.StdEncoding.EncodeToString(raw)
	}
	return json.MarshalIndent(f, "", "  ")
}

// Region returns the region the keyring belongs to.
func (k *Keyring) Region() string { return k.region }

// SigningKeyID returns the id of the key that signs new checkpoints.
func (k *Keyring) SigningKeyID() string { return k.signID }

// PublicKeys returns every checkpoint verification key by id: the signing key's and retired ones.
func (k *Keyring) PublicKeys() map[string]ed25519.PublicKey {
	m := make(map[string]ed25519.PublicKey, len(k.publicKeys))
	for id, p := range k.publicKeys {
		m[id] = p
	}
	return m
}

// ActiveDataKeyID returns the id of the data key that wraps new subject keys.
func (k *Keyring) ActiveDataKeyID() string { return k.active }

// DataKeyIDs returns the ids of every data key, sorted.
func (k *Keyring) DataKeyIDs() []string {
	ids := make([]string, 0, len(k.dataKeys))
	for id := range k.dataKeys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// LookupHashLen is the length in bytes of a lookup hash before hex encoding.
//
// HMAC-SHA256 is truncated to 128 bits (32 hex characters). The secrecy of the lookup key, not the
// length, is what stops someone from hashing every possible phone number (there are fewer than 2^40);
// 128 bits keep the chance that two of a region's subjects (at most about 2^34) share a hash below
// 2^-60, and half the index size of a full hash.
const LookupHashLen = 16

// LookupHash returns the keyed lookup hash of an E.164 number: hex(HMAC-SHA256(lookupKey, e164))
// truncated to LookupHashLen bytes. Give it the normalised E.164 form ("+6591234567"); other spellings
// of the same number hash differently. It is the subject reference of the number's subject key and
// the column that lookups by recipient use.
func (k *Keyring) LookupHash(e164 string) string {
	h := k.hmacs.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(e164))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	k.hmacs.Put(h)
	return hex.EncodeToString(sum[:LookupHashLen])
}

func (k *Keyring) describe() string {
	return "audit.Keyring{region=" + k.region + " signing_key=" + k.signID + " active_data_key=" + k.active +
		" data_keys=[" + strings.Join(k.DataKeyIDs(), ",") + "]}"
}

// String describes the keyring by ids only.
func (k *Keyring) String() string { return k.describe() }

// GoString describes the keyring by ids only, so %#v does not print keys.
func (k *Keyring) GoString() string { return k.describe() }

// LogValue describes the keyring by ids only.
func (k *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("region", k.region), slog.String("signing_key", k.signID),
		slog.String("active_data_key", k.active), slog.Any("data_keys", k.DataKeyIDs()))
}

// MarshalJSON describes the keyring by ids only, so an accidental json.Marshal does not leak keys.
// Use Export for the real JSON form.
func (k *Keyring) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{"region": k.region, "signing_key": k.signID,
		"active_data_key": k.active, "data_keys": k.DataKeyIDs()})
}
