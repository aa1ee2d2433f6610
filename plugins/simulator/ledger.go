package simulator

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// LedgerFile is the name of the ledger inside the state directory.
const LedgerFile = "ledger.jsonl"

// Ledger operations.
const (
	opSent  = "sent"  // a message was sent: the key, the ids
	opEvent = "event" // an event was scheduled
	opAck   = "ack"   // an event was acknowledged by the host
)

// record is one line of the ledger.
type record struct {
	Op                string    `json:"op"`
	Key               string    `json:"key,omitempty"`
	MessageID         string    `json:"message_id,omitempty"`
	ProviderMessageID string    `json:"provider_message_id,omitempty"`
	ID                uint64    `json:"id,omitempty"`
	Kind              string    `json:"kind,omitempty"`
	Status            string    `json:"status,omitempty"`
	ErrorCode         string    `json:"error_code,omitempty"`
	ErrorMessage      string    `json:"error_message,omitempty"`
	From              string    `json:"from,omitempty"`
	To                string    `json:"to,omitempty"`
	Body              string    `json:"body,omitempty"`
	At                time.Time `json:"at,omitzero"`
}

// ledger is the simulated remote provider's durable memory: an append-only file of JSON lines.
// Sends are fsync'd per batch; acks are written without fsync, since losing one only causes a
// redelivery, which the host must tolerate anyway.
type ledger struct {
	f    *os.File
	size int64
	buf  bytes.Buffer
}

// openLedger opens (creating) the ledger in dir and returns the records it holds. A torn last line,
// left by a crash in the middle of a write, is cut off.
func openLedger(dir string) (*ledger, []record, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, LedgerFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	recs, good, err := readRecords(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, nil, err
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return &ledger{f: f, size: good}, recs, nil
}

// readRecords parses the records of r and returns the length of the part that holds whole lines.
func readRecords(r io.Reader) ([]record, int64, error) {
	var (
		recs []record
		good int64
	)
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return recs, good, nil // A line without its newline is torn.
		}
		if err != nil {
			return nil, 0, err
		}
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, 0, fmt.Errorf("ledger line %d: %w", n, err)
		}
		recs = append(recs, rec)
		good += int64(len(line))
	}
}

// append writes recs in one write and, if sync, waits for them to reach the disk. On failure the
// file is cut back to where it was, so that no part of the batch counts as sent.
func (l *ledger) append(recs []record, sync bool) error {
	l.buf.Reset()
	enc := json.NewEncoder(&l.buf)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return err
		}
	}
	n, err := l.f.Write(l.buf.Bytes())
	if err == nil && sync {
		err = l.f.Sync()
	}
	if err != nil {
		if n > 0 {
			err = errors.Join(err, l.f.Truncate(l.size))
			_, _ = l.f.Seek(l.size, io.SeekStart)
		}
		return err
	}
	l.size += int64(n)
	return nil
}

func (l *ledger) close() error { return l.f.Close() }

// ReadLedger reads the ledger in stateDir and returns, for every idempotency key, how many times a
// message with that key was actually sent. A correct simulator never sends a key twice, so every
// count is 1; tests use this to prove it across restarts.
func ReadLedger(stateDir string) (map[string]int, error) {
	f, err := os.Open(filepath.Join(stateDir, LedgerFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, _, err := readRecords(f)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int)
	for _, r := range recs {
		if r.Op == opSent && r.Key != "" {
			counts[r.Key]++
		}
	}
	return counts, nil
}
