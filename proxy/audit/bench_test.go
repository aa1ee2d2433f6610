package audit

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkAppend is the store's hot path for one event: subject key from the cache, seal the
// personal fields bound to the record, link into the chain.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	kr, _ := GenerateKeyring("sg", testNow)
	s, _ := NewSealer(kr, NewMemSubjectKeys(), SealerOptions{})
	refs := make([]string, 1000)
	for i := range refs {
		refs[i] = kr.LookupHash(fmt.Sprintf("+6591%06d", i))
	}
	c := NewChain("sg", Head{})
	data := []byte(`{"to":"+65******67","from":"PAYLINK88","category":"transaction","segments":1,"country":"SG","provider":"simulator"}`)
	personal := []byte(`{"to":"+6591234567","body":"Your transfer PL20241208009 has arrived."}`)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k, err := s.Key(ctx, refs[i%len(refs)])
		if err != nil {
			b.Fatal(err)
		}
		e := Event{At: testNow, Kind: "message.accepted", MessageID: "msg_01a21d47edb824e99584bf858ec9", App: "dev", Data: data}
		seq := c.Next()
		if e.Sealed, err = k.Seal(personal, SealAAD(seq, e.Kind, e.MessageID)); err != nil {
			b.Fatal(err)
		}
		e.SubjectRef = k.Ref()
		c.Link(&e)
	}
}

// BenchmarkLookupHash is one recipient lookup hash.
func BenchmarkLookupHash(b *testing.B) {
	kr, _ := GenerateKeyring("sg", testNow)
	b.ReportAllocs()
	for b.Loop() {
		kr.LookupHash("+6591234567")
	}
}

// BenchmarkVerify1M verifies a 1,000,000-record trail with a checkpoint every 10,000 records and
// reports records/s. Records are rebuilt from their stored hashes into one reused Event, as a store
// scan would, so memory stays small; run it with -benchtime=1x.
func BenchmarkVerify1M(b *testing.B) {
	const n, every = 1_000_000, 10_000
	kr, _ := GenerateKeyring("sg", testNow)
	data := []byte(`{"to":"+65******67","from":"PAYLINK88","category":"transaction","segments":1,"country":"SG","provider":"simulator"}`)
	sealed := make([]byte, 117) // the size of a sealed {"to","body"} pair
	ref := kr.LookupHash("+6591234567")
	fill := func(e *Event, seq int64) {
		e.Seq, e.At, e.Kind, e.MessageID, e.App = seq, testNow.Add(time.Duration(seq)*time.Millisecond), "message.accepted", "msg_01a21d47edb824e99584bf858ec9", "dev"
		e.Data, e.Sealed, e.SubjectRef = data, sealed, ref
	}
	hashes := make([][HashSize]byte, n+1)
	copy(hashes[0][:], GenesisHash("sg"))
	var cps []Checkpoint
	c := NewChain("sg", Head{})
	var e Event
	for seq := int64(1); seq <= n; seq++ {
		fill(&e, seq)
		c.Link(&e)
		copy(hashes[seq][:], e.Hash)
		if seq%every == 0 {
			cp, err := kr.Checkpoint(c.Head(), Anchor{}, testNow)
			if err != nil {
				b.Fatal(err)
			}
			cps = append(cps, cp)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		v, err := NewVerifier(VerifyOptions{Region: "sg", Keys: kr.PublicKeys(), Checkpoints: cps})
		if err != nil {
			b.Fatal(err)
		}
		for seq := int64(1); seq <= n; seq++ {
			fill(&e, seq)
			e.PrevHash, e.Hash = hashes[seq-1][:], hashes[seq][:]
			if err := v.Add(&e); err != nil {
				b.Fatal(err)
			}
		}
		if rep := v.Finish(); !rep.OK() || rep.Records != n {
			b.Fatalf("%+v", rep)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
