package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"time"
)

// Event kinds this package names. The store names the message kinds ("message.accepted", …).
const (
	// KindSubjectErased is the event appended after Sealer.Erase; it carries SubjectRef and no personal data.
	KindSubjectErased = "subject.erased"
)

// HashSize is the size of every hash in the trail (SHA-256).
const HashSize = sha256.Size

// Event is one record of the audit trail as it is stored. Data is masked JSON, stored byte for byte;
// Sealed holds the personal fields (recipient, body) encrypted under the subject's key; SubjectRef is
// the subject's lookup hash. Hash is SHA-256 over the canonical encoding of every other field,
// PrevHash included, so changing, removing or reordering any record breaks the chain.
type Event struct {
	Seq        int64
	At         time.Time
	Kind       string
	MessageID  string
	App        string
	Data       []byte
	Sealed     []byte
	SubjectRef string
	PrevHash   []byte
	Hash       []byte
}

// eventDomain separates event hashes from every other hash this package computes.
const eventDomain = "smsproxy.audit.event.v1\x00"

// hasher computes event hashes with one reusable buffer. It is not safe for concurrent use.
type hasher struct {
	h   hash.Hash
	buf []byte
	sum [HashSize]byte
}

func newHasher() *hasher { return &hasher{h: sha256.New(), buf: make([]byte, 0, 512)} }

// hash returns SHA-256 of the canonical encoding of e without its Hash field: a domain string, then
// Seq and At (Unix microseconds, UTC) as 8-byte big-endian integers, then Kind, MessageID, App, Data,
// Sealed, SubjectRef and PrevHash each as a 4-byte big-endian length followed by its bytes. Fixed
// widths and length prefixes make the encoding unambiguous. The result aliases the hasher's buffer.
func (x *hasher) hash(e *Event) []byte {
	b := append(x.buf[:0], eventDomain...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(e.At.UnixMicro()))
	b = appendField(b, e.Kind)
	b = appendField(b, e.MessageID)
	b = appendField(b, e.App)
	b = appendBytes(b, e.Data)
	b = appendBytes(b, e.Sealed)
	b = appendField(b, e.SubjectRef)
	b = appendBytes(b, e.PrevHash)
	x.buf = b
	x.h.Reset()
	x.h.Write(b)
	return x.h.Sum(x.sum[:0])
}

func appendField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// HashEvent returns the hash e must carry: SHA-256 of its canonical encoding (see Chain.Link).
func HashEvent(e *Event) []byte {
	return append([]byte(nil), newHasher().hash(e)...)
}

// GenesisHash is the PrevHash of a region's first record (seq 1): SHA-256 of a domain string and the
// region, so a trail copied from another region does not verify.
func GenesisHash(region string) []byte {
	s := sha256.Sum256([]byte("smsproxy.audit.genesis.v1\x00" + region))
	return s[:]
}

// Head is the last record of a chain: its sequence number and hash. The zero Head is an empty trail.
type Head struct {
	Seq  int64
	Hash []byte
}

// Chain links new events to the end of a region's trail. It is not safe for concurrent use: the
// store's single writer owns it, advancing it as it inserts and resetting it when a transaction (or
// one operation's savepoint) rolls back.
type Chain struct {
	region string
	head   Head
	h      *hasher
}

// NewChain resumes the trail of region after head (the last stored record), or starts it when head
// is the zero Head.
func NewChain(region string, head Head) *Chain {
	c := &Chain{region: region, h: newHasher()}
	c.Reset(head)
	return c
}

// Head returns the last linked record. Keep it before a transaction or savepoint to Reset to.
func (c *Chain) Head() Head { return c.head }

// Reset moves the chain back to head, after the records linked since were rolled back.
func (c *Chain) Reset(head Head) {
	if head.Seq <= 0 {
		head = Head{Seq: 0, Hash: GenesisHash(c.region)}
	}
	c.head = Head{Seq: head.Seq, Hash: append([]byte(nil), head.Hash...)}
}

// Next returns the sequence number the next linked event will get.
func (c *Chain) Next() int64 { return c.head.Seq + 1 }

// Link makes e the next record: it sets e.Seq, rounds e.At to the microsecond in UTC (the precision
// the hash covers, so store At with at least that precision), sets e.PrevHash to the head's hash and
// e.Hash, and advances the head. Seal personal fields before Link: the hash covers Sealed.
func (c *Chain) Link(e *Event) {
	e.Seq = c.head.Seq + 1
	e.At = e.At.UTC().Truncate(time.Microsecond)
	e.PrevHash = c.head.Hash
	e.Hash = append([]byte(nil), c.h.hash(e)...)
	c.head = Head{Seq: e.Seq, Hash: e.Hash}
}
