package simulator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"strings"
	"testing"
	"time"
)

// encodeJSON is what the ledger wrote with encoding/json before appendRecord replaced it.
func encodeJSON(t testing.TB, r *record) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAppendRecordMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.FixedZone("SGT", 8*3600))
	tricky := "a\"b\\c<d>e&f\x00\x01\x1f\x7f\b\f\n\r\t é €😀 \u2028\u2029 \xff\xfe end"
	tests := []struct {
		name string
		rec  record
	}{
		{"empty", record{}},
		{"ack", record{Op: opAck, ID: 42}},
		{"sent", record{Op: opSent, Key: "k1", MessageID: "m-k1", ProviderMessageID: "sim-1", At: at}},
		{"utc time", record{Op: opSent, Key: "k", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}},
		{"monotonic time", record{Op: opSent, Key: "k", At: time.Now()}},
		{"event", record{
			Op: opEvent, ProviderMessageID: "sim-2", ID: 3, Kind: "receipt", Status: "undeliverable",
			ErrorCode: "sim_undeliverable", ErrorMessage: "simulated undeliverable message", At: at,
		}},
		{"inbound", record{Op: opEvent, ID: 1<<64 - 1, Kind: "inbound", From: "+6591234567", To: "ACME", Body: "STOP", At: at}},
		{"escapes in every field", record{
			Op: tricky, Key: tricky, MessageID: tricky, ProviderMessageID: tricky, Kind: tricky, Status: tricky,
			ErrorCode: tricky, ErrorMessage: tricky, From: tricky, To: tricky, Body: tricky,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appendRecord([]byte("prefix"), &tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]byte("prefix"), encodeJSON(t, &tt.rec)...)
			if !bytes.Equal(got, want) {
				t.Errorf("appendRecord:\n got %q\nwant %q", got, want)
			}
		})
	}
	if got := appendAck(nil, 7); !bytes.Equal(got, encodeJSON(t, &record{Op: opAck, ID: 7})) {
		t.Errorf("appendAck: %q", got)
	}
}

func TestAppendRecordRefusesBadTime(t *testing.T) {
	r := record{Op: opSent, Key: "k", At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	got, err := appendRecord([]byte("keep"), &r)
	if err == nil || string(got) != "keep" {
		t.Errorf("year 10000: %q, %v; want an error and nothing appended", got, err)
	}
}

func FuzzAppendRecord(f *testing.F) {
	f.Add("k1", "Your code is <123456> & \"more\"", int64(0), uint64(1))
	f.Add("\xff\u2028", "\x00\t", int64(1_700_000_000_123_456_789), uint64(0))
	f.Fuzz(func(t *testing.T, key, body string, nanos int64, id uint64) {
		r := record{Op: opEvent, Key: key, Body: body, From: body + key, ID: id}
		if nanos != 0 {
			r.At = time.Unix(0, nanos).In(time.FixedZone("", int(nanos%50_000)))
		}
		want, werr := func() ([]byte, error) {
			var buf bytes.Buffer
			err := json.NewEncoder(&buf).Encode(&r)
			return buf.Bytes(), err
		}()
		got, err := appendRecord(nil, &r)
		if (err != nil) != (werr != nil) {
			t.Fatalf("error %v, encoding/json %v", err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("appendRecord:\n got %q\nwant %q", got, want)
		}
	})
}

// fnvChance is chance as it was first written, with hash/fnv; the outcomes of a seed must not
// change from one release to the next.
func fnvChance(seed int64, label, key string, attempt uint64) float64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	h.Write(b[:])
	h.Write([]byte(label))
	h.Write([]byte{0})
	h.Write([]byte(key))
	binary.LittleEndian.PutUint64(b[:], attempt)
	h.Write(b[:])
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

func TestChanceUnchanged(t *testing.T) {
	for _, seed := range []int64{0, 1, 3, -7, 1 << 62} {
		for _, label := range []string{"send", "receipt", ""} {
			for _, key := range []string{"", "k1", "sim-12345", strings.Repeat("é", 40)} {
				for _, attempt := range []uint64{0, 1, 255, 1<<64 - 1} {
					if got, want := chance(seed, label, key, attempt), fnvChance(seed, label, key, attempt); got != want {
						t.Errorf("chance(%d, %q, %q, %d) = %v, want %v", seed, label, key, attempt, got, want)
					}
				}
			}
		}
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	r := record{Op: opSent, Key: "key-123456789", MessageID: "msg-123456789", ProviderMessageID: "sim-123456", At: time.Now()}
	b.Run("appendRecord", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = appendRecord(buf[:0], &r)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for b.Loop() {
			buf.Reset()
			_ = enc.Encode(&r)
		}
	})
}
