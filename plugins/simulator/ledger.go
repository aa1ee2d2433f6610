package simulator

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// LedgerFile is the name of the ledger inside the state directory.
const LedgerFile = "ledger.jsonl"

// Ledger operations.
const (
	opSent  = "sent"  // a message was sent: the key, the ids
	opEvent = "event" // an event was scheduled
	opAck   = "ack"   // an event was acknowledged by the host
)

// maxSpareBuffer is the largest write buffer the ledger keeps for reuse.
const maxSpareBuffer = 256 << 10

// ackDelay is the longest an ack waits in memory to share a write with others.
const ackDelay = 10 * time.Millisecond

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
// Sends are committed in groups: the batches of all Sends waiting at the same time go to the file in
// one write and one fsync (see Simulator.Send). Acks are written without fsync, since losing one
// only causes a redelivery, which the host must tolerate anyway. They are written together: with
// the next commit, when Receive has no delivery left in flight, when it ends, at Close, and at the
// latest ackDelay after they were made; a crash of the plugin process can lose the acks of that
// last moment, whose events are then delivered again.
type ledger struct {
	// mu serialises writes, truncation and close. size is the length of the file up to the end of
	// the last write that succeeded.
	mu     sync.Mutex
	f      *os.File
	size   int64
	closed bool
	// sync makes the file durable; tests replace it to watch or fail it.
	sync func() error

	// amu guards the acks waiting to be written and the timer that writes them.
	amu       sync.Mutex
	acks      []byte
	spare     []byte
	ackTimer  *time.Timer
	ackClosed bool
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
	return &ledger{f: f, size: good, sync: f.Sync}, recs, nil
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

// commit writes the acks waiting and buf, whole lines, in one write and waits for the file to reach
// the disk. On failure the file is cut back to where it was before, so that no part of buf counts
// as written (acks written meanwhile go too; their events are delivered again). scratch is reused
// for the write and returned.
func (l *ledger) commit(buf, scratch []byte) ([]byte, error) {
	scratch = l.takeAcks(scratch[:0])
	if len(scratch) > 0 {
		buf = append(scratch, buf...)
		scratch = buf
	}
	l.mu.Lock()
	start := l.size
	err := l.writeLocked(buf)
	l.mu.Unlock()
	if err != nil {
		return scratch, err
	}
	// The fsync runs outside mu so that acks can be written meanwhile; it covers every byte
	// written before it starts, buf included.
	if err := l.sync(); err != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.closed {
			return scratch, err
		}
		return scratch, errors.Join(err, l.truncateLocked(start))
	}
	return scratch, nil
}

// ack records that event id was acknowledged. The ack waits in memory for at most ackDelay,
// so that the acks of a burst of receipts share one write, or goes out sooner with a commit.
func (l *ledger) ack(id uint64) {
	l.amu.Lock()
	defer l.amu.Unlock()
	if l.ackClosed {
		return // Delivered again after a restart, as an ack lost in a crash would be.
	}
	if len(l.acks) == 0 {
		if l.acks == nil {
			l.acks, l.spare = l.spare, nil
		}
		if l.ackTimer == nil {
			l.ackTimer = time.AfterFunc(ackDelay, l.flushAcks)
		} else {
			l.ackTimer.Reset(ackDelay)
		}
	}
	l.acks = appendAck(l.acks, id)
}

// takeAcks appends the acks waiting to dst and forgets them.
func (l *ledger) takeAcks(dst []byte) []byte {
	l.amu.Lock()
	defer l.amu.Unlock()
	if len(l.acks) > 0 {
		dst = append(dst, l.acks...)
		l.acks = l.acks[:0]
		l.ackTimer.Stop()
	}
	return dst
}

// flushAcks writes the acks waiting, without fsync.
func (l *ledger) flushAcks() {
	l.amu.Lock()
	buf := l.acks
	l.acks = nil
	if len(buf) > 0 {
		l.ackTimer.Stop()
	}
	l.amu.Unlock()
	if len(buf) == 0 {
		return
	}
	l.mu.Lock()
	err := l.writeLocked(buf)
	l.mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrClosed) {
		// The events will be delivered again after a restart; the host tolerates that.
		slog.Warn("simulator ledger ack write failed", "err", err)
	}
	l.amu.Lock()
	if l.spare == nil && cap(buf) <= maxSpareBuffer {
		l.spare = buf[:0]
	}
	l.amu.Unlock()
}

// writeLocked appends buf; on failure it cuts the file back to its size before. l.mu must be held.
func (l *ledger) writeLocked(buf []byte) error {
	if l.closed {
		return os.ErrClosed
	}
	n, err := l.f.Write(buf)
	if err != nil {
		if n > 0 {
			err = errors.Join(err, l.truncateLocked(l.size))
		}
		return err
	}
	l.size += int64(n)
	return nil
}

// truncateLocked cuts the file to size; l.mu must be held.
func (l *ledger) truncateLocked(size int64) error {
	l.size = size
	err := l.f.Truncate(size)
	if _, serr := l.f.Seek(size, io.SeekStart); err == nil {
		err = serr
	}
	return err
}

// close writes the acks waiting and closes the file; acks made afterwards are dropped.
func (l *ledger) close() error {
	l.amu.Lock()
	l.ackClosed = true
	l.amu.Unlock()
	l.flushAcks()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.f.Close()
}

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

// appendRecord appends r as one ledger line: byte for byte what encoding/json's Encoder writes for
// it (HTML-safe escaping, omitted empty fields, a newline), without reflection or allocation.
func appendRecord(dst []byte, r *record) ([]byte, error) {
	start := len(dst)
	dst = append(dst, `{"op":`...)
	dst = appendJSONString(dst, r.Op)
	dst = appendField(dst, `,"key":`, r.Key)
	dst = appendField(dst, `,"message_id":`, r.MessageID)
	dst = appendField(dst, `,"provider_message_id":`, r.ProviderMessageID)
	if r.ID != 0 {
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendUint(dst, r.ID, 10)
	}
	dst = appendField(dst, `,"kind":`, r.Kind)
	dst = appendField(dst, `,"status":`, r.Status)
	dst = appendField(dst, `,"error_code":`, r.ErrorCode)
	dst = appendField(dst, `,"error_message":`, r.ErrorMessage)
	dst = appendField(dst, `,"from":`, r.From)
	dst = appendField(dst, `,"to":`, r.To)
	dst = appendField(dst, `,"body":`, r.Body)
	if !r.At.IsZero() {
		dst = append(dst, `,"at":"`...)
		out, err := r.At.AppendText(dst)
		if err != nil {
			return dst[:start], fmt.Errorf("ledger: time %v: %w", r.At, err)
		}
		dst = append(out, '"')
	}
	return append(dst, '}', '\n'), nil
}

// appendAck appends the ledger line of an ack of event id.
func appendAck(dst []byte, id uint64) []byte {
	dst = append(dst, `{"op":"ack","id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	return append(dst, '}', '\n')
}

func appendField(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	return appendJSONString(append(dst, name...), v)
}

// appendJSONString appends s quoted the way encoding/json does with HTML escaping on: <, > and &
// as \u003c, \u003e and \u0026, control characters escaped, invalid UTF-8 as \ufffd, and U+2028
// and U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
