package audit

import (
	"bytes"
	"crypto/ed25519"
	"slices"
	"strconv"
)

// VerifyOptions configures a Verifier.
type VerifyOptions struct {
	// Region is the trail's region; it fixes the genesis hash and must match every checkpoint.
	Region string
	// Keys are the checkpoint verification keys by id (Keyring.PublicKeys).
	Keys map[string]ed25519.PublicKey
	// Checkpoints are every stored checkpoint, in any order.
	Checkpoints []Checkpoint
}

// Report is the outcome of a verification.
type Report struct {
	// Records is how many records were checked; FirstSeq and LastSeq bound them (0 when none).
	Records, FirstSeq, LastSeq int64
	// Head is the hash of the last record checked.
	Head []byte
	// Checkpoints is how many checkpoints were given; CheckpointsMatched how many named a record that
	// was present and matched; CheckpointsBeforeStart how many refer to records purged by retention.
	Checkpoints, CheckpointsMatched, CheckpointsBeforeStart int
	// Unanchored is how many records come after the last checkpoint: they chain correctly, but
	// truncating them would not be detected until the next checkpoint.
	Unanchored int64
	// Problem is the first bad record, or nil when the trail verifies.
	Problem *Problem
}

// OK reports whether the trail verified.
func (r *Report) OK() bool { return r.Problem == nil }

// Verifier checks a trail streamed to it in seq order: that it starts at seq 1 or at a signed purge
// anchor, that every record's hash is right and links to its predecessor with no gap, that every
// checkpoint is validly signed and that the record it names is present and matches, and that the
// trail does not end before the last checkpoint. It stops at the first bad record. It is not safe for
// concurrent use and keeps no reference to the events it is given.
type Verifier struct {
	region    string
	anchors   map[int64][]byte // FirstSeq → FirstPrevHash of valid checkpoints, and genesis
	expect    map[int64][]byte // Seq → Hash of valid checkpoints
	lastCP    int64            // highest checkpoint seq, 0 when none
	lastCPAll bool             // the highest checkpoint's anchor is past its head: everything purged
	cpCount   map[int64]int    // Seq → how many valid checkpoints name it
	h         *hasher
	prev      [HashSize]byte
	rep       Report
}

// NewVerifier checks the checkpoints' signatures and prepares to verify. A bad checkpoint is reported
// as the Verifier's problem, not as an error; the error is for unusable options.
func NewVerifier(opts VerifyOptions) (*Verifier, error) {
	if err := checkName("region", opts.Region); err != nil {
		return nil, err
	}
	v := &Verifier{
		region:  opts.Region,
		anchors: map[int64][]byte{1: GenesisHash(opts.Region)},
		expect:  map[int64][]byte{},
		cpCount: map[int64]int{},
		h:       newHasher(),
	}
	v.rep.Checkpoints = len(opts.Checkpoints)
	cps := slices.Clone(opts.Checkpoints)
	slices.SortStableFunc(cps, func(a, b Checkpoint) int {
		if a.Seq != b.Seq {
			return cmpInt(a.Seq, b.Seq)
		}
		return cmpInt(a.FirstSeq, b.FirstSeq)
	})
	for i := range cps {
		c := &cps[i]
		if c.Region != opts.Region {
			v.fail(c.Seq, CodeCheckpointSignature, "a checkpoint of seq "+fmtSeq(c.Seq)+" belongs to region "+strconv.Quote(c.Region))
			return v, nil
		}
		if err := VerifyCheckpoint(c, opts.Keys); err != nil {
			v.fail(c.Seq, CodeCheckpointSignature, "the checkpoint of seq "+fmtSeq(c.Seq)+" is not valid: "+err.Error())
			return v, nil
		}
		if h, ok := v.expect[c.Seq]; ok && !bytes.Equal(h, c.Hash) {
			v.fail(c.Seq, CodeCheckpointMissing, "two signed checkpoints disagree about record "+fmtSeq(c.Seq))
			return v, nil
		}
		if h, ok := v.anchors[c.FirstSeq]; ok && !bytes.Equal(h, c.FirstPrevHash) {
			v.fail(c.FirstSeq, CodeCheckpointMissing, "two signed anchors disagree about what record "+fmtSeq(c.FirstSeq)+" links to")
			return v, nil
		}
		v.expect[c.Seq] = c.Hash
		v.anchors[c.FirstSeq] = c.FirstPrevHash
		v.cpCount[c.Seq]++
		if c.Seq >= v.lastCP {
			v.lastCP = c.Seq
			v.lastCPAll = c.FirstSeq > c.Seq
		}
	}
	return v, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func fmtSeq(n int64) string { return strconv.FormatInt(n, 10) }

func (v *Verifier) fail(seq int64, code, detail string) *Problem {
	if v.rep.Problem == nil {
		v.rep.Problem = &Problem{Seq: seq, Code: code, Detail: detail}
	}
	return v.rep.Problem
}

// Add checks the next record. It returns the first problem found (now or before) as a *Problem; once
// it has returned one, the trail is bad and further records are not checked.
func (v *Verifier) Add(e *Event) error {
	if v.rep.Problem != nil {
		return v.rep.Problem
	}
	if v.rep.Records == 0 {
		want, ok := v.anchors[e.Seq]
		if !ok {
			return v.fail(e.Seq, CodeTruncated, "the trail starts at seq "+fmtSeq(e.Seq)+", which is neither seq 1 nor a signed purge anchor: records before it were removed")
		}
		if !bytes.Equal(e.PrevHash, want) {
			return v.fail(e.Seq, CodeChainBroken, "the first record does not link to the signed anchor of seq "+fmtSeq(e.Seq))
		}
		v.rep.FirstSeq = e.Seq
	} else {
		last := v.rep.LastSeq
		switch {
		case e.Seq == last+1:
		case e.Seq > last+1:
			return v.fail(last+1, CodeChainBroken, "records "+fmtSeq(last+1)+" to "+fmtSeq(e.Seq-1)+" are missing")
		default:
			return v.fail(e.Seq, CodeChainBroken, "seq "+fmtSeq(e.Seq)+" comes after seq "+fmtSeq(last)+": records are duplicated or out of order")
		}
	}
	if !bytes.Equal(v.h.hash(e), e.Hash) {
		return v.fail(e.Seq, CodeHashMismatch, "the record's content does not match its hash: it was changed")
	}
	if v.rep.Records > 0 && !bytes.Equal(e.PrevHash, v.prev[:]) {
		return v.fail(e.Seq, CodeChainBroken, "the record does not link to record "+fmtSeq(e.Seq-1)+": one of them was rewritten")
	}
	if want, ok := v.expect[e.Seq]; ok {
		if !bytes.Equal(want, e.Hash) {
			return v.fail(e.Seq, CodeCheckpointMissing, "the record is not the one the checkpoint of seq "+fmtSeq(e.Seq)+" signed: the trail was rewritten")
		}
		v.rep.CheckpointsMatched += v.cpCount[e.Seq]
	}
	if want, ok := v.anchors[e.Seq]; ok && v.rep.Records > 0 && !bytes.Equal(want, e.PrevHash) {
		return v.fail(e.Seq, CodeCheckpointMissing, "the record does not link to what the signed anchor of seq "+fmtSeq(e.Seq)+" says: the trail was rewritten")
	}
	copy(v.prev[:], e.Hash)
	v.rep.LastSeq = e.Seq
	v.rep.Records++
	return nil
}

// Finish ends the verification: it reports truncation after the last checkpoint and counts what is
// anchored. Call it once, after the last Add.
func (v *Verifier) Finish() Report {
	rep := v.rep
	if rep.Records > 0 {
		rep.Head = append([]byte(nil), v.prev[:]...)
	}
	if rep.Problem == nil {
		switch {
		case rep.Records == 0 && v.lastCP > 0 && !v.lastCPAll:
			v.fail(v.lastCP, CodeTruncated, "the trail is empty but a checkpoint signed records up to seq "+fmtSeq(v.lastCP))
		case rep.Records > 0 && v.lastCP > rep.LastSeq:
			v.fail(rep.LastSeq+1, CodeTruncated, "the trail ends at seq "+fmtSeq(rep.LastSeq)+" but a checkpoint signed records up to seq "+fmtSeq(v.lastCP))
		}
		rep.Problem = v.rep.Problem
	}
	for seq, n := range v.cpCount {
		if rep.Records == 0 || seq < rep.FirstSeq {
			rep.CheckpointsBeforeStart += n
		}
	}
	if rep.Records > 0 && rep.LastSeq > v.lastCP {
		from := max(v.lastCP, rep.FirstSeq-1)
		rep.Unanchored = rep.LastSeq - from
	}
	return rep
}
