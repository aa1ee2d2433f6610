package audit

import (
	"crypto/ed25519"
	"encoding/binary"
	"time"
)

// Checkpoint is a signed statement of a region's trail: its head (Seq, Hash) at time At, and its
// anchor (FirstSeq, FirstPrevHash): the first retained record and the hash it links to. A checkpoint
// detects truncation after it and rewriting before it; its anchor lets the trail verify after a
// retention purge removed everything before FirstSeq.
type Checkpoint struct {
	Region        string
	Seq           int64
	Hash          []byte
	FirstSeq      int64
	FirstPrevHash []byte
	At            time.Time
	KeyID         string
	Signature     []byte
}

// Anchor is the first retained record of a trail: its sequence number and the hash it links to. The
// zero Anchor means nothing was ever purged (seq 1 and the genesis hash).
type Anchor struct {
	Seq      int64
	PrevHash []byte
}

const checkpointDomain = "smsproxy.audit.checkpoint.v1\x00"

// signedBytes is the canonical encoding a checkpoint's signature covers: a domain string, then
// Region, Seq, Hash, FirstSeq, FirstPrevHash, At (Unix microseconds) and KeyID, strings and byte
// slices length-prefixed, integers 8-byte big-endian.
func (c *Checkpoint) signedBytes() []byte {
	b := make([]byte, 0, 160+len(c.Region)+len(c.KeyID))
	b = append(b, checkpointDomain...)
	b = appendField(b, c.Region)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Seq))
	b = appendBytes(b, c.Hash)
	b = binary.BigEndian.AppendUint64(b, uint64(c.FirstSeq))
	b = appendBytes(b, c.FirstPrevHash)
	b = binary.BigEndian.AppendUint64(b, uint64(c.At.UnixMicro()))
	return appendField(b, c.KeyID)
}

// Checkpoint signs a checkpoint of head with anchor first (the zero Anchor before any purge) at time
// at. After a purge that removed everything, first is (head.Seq+1, head.Hash).
func (k *Keyring) Checkpoint(head Head, first Anchor, at time.Time) (Checkpoint, error) {
	if first.Seq == 0 {
		first = Anchor{Seq: 1, PrevHash: GenesisHash(k.region)}
	}
	c := Checkpoint{
		Region:        k.region,
		Seq:           head.Seq,
		Hash:          append([]byte(nil), head.Hash...),
		FirstSeq:      first.Seq,
		FirstPrevHash: append([]byte(nil), first.PrevHash...),
		At:            at.UTC().Truncate(time.Microsecond),
		KeyID:         k.signID,
	}
	if err := c.check(); err != nil {
		return Checkpoint{}, err
	}
	c.Signature = ed25519.Sign(k.signKey, c.signedBytes())
	return c, nil
}

func (c *Checkpoint) check() error {
	switch {
	case c.Seq < 1:
		return newErr(CodeCheckpointInvalid, "a checkpoint needs a head with seq 1 or more", nil)
	case len(c.Hash) != HashSize || len(c.FirstPrevHash) != HashSize:
		return newErr(CodeCheckpointInvalid, "checkpoint hashes must be 32 bytes", nil)
	case c.FirstSeq < 1 || c.FirstSeq > c.Seq+1:
		return newErr(CodeCheckpointInvalid, "the anchor's seq must be between 1 and the head's seq + 1", nil)
	case c.FirstSeq == c.Seq+1 && string(c.FirstPrevHash) != string(c.Hash):
		return newErr(CodeCheckpointInvalid, "an anchor past the head must link to the head", nil)
	}
	return nil
}

// VerifyCheckpoint checks c's shape and its signature with the key named by c.KeyID. Its errors have
// code "checkpoint_signature" (unknown key, bad signature) or "checkpoint_invalid".
func VerifyCheckpoint(c *Checkpoint, keys map[string]ed25519.PublicKey) error {
	if err := c.check(); err != nil {
		return err
	}
	pub, ok := keys[c.KeyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return newErr(CodeCheckpointSignature, "checkpoint signed with unknown key "+c.KeyID, nil)
	}
	if !ed25519.Verify(pub, c.signedBytes(), c.Signature) {
		return newErr(CodeCheckpointSignature, "checkpoint signature does not verify with key "+c.KeyID, nil)
	}
	return nil
}
