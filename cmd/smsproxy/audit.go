package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/smsproxy/smsproxy/proxy"
	"github.com/smsproxy/smsproxy/proxy/audit"
	"github.com/smsproxy/smsproxy/proxy/config"
	"github.com/smsproxy/smsproxy/proxy/sms"
	"github.com/smsproxy/smsproxy/proxy/store"
)

const auditUsage = `usage:
  smsproxy audit verify [-config f] [-keyring ref]
  smsproxy audit export [-config f] [-from 2026-03-01] [-to 2026-04-01] [-recipient +65...] [-decrypt -keyring ref] [-o file]
  smsproxy audit search -recipient +65... [-config f] [-from date] [-to date] [-keyring ref]
  smsproxy audit erase  -recipient +65... -by "dpo@example.com" [-config f] [-keyring ref]
  smsproxy audit keygen -o file [-region sg | -config f] [-rotate ref]
A keyring reference is file:/path/keys.json or env:NAME. Exit status: 0 ok, 1 failed (verify: the trail is bad), 2 usage.`

// auditStore is what the audit commands need from a store: its audit trail, then Close.
type auditStore interface {
	store.AuditTrail
	Close() error
}

// openAuditStore opens the configured store with the keyring; tests replace it.
var openAuditStore = func(ctx context.Context, cfg *config.Config, kr *audit.Keyring, log *slog.Logger) (auditStore, error) {
	path := cfg.StorePath()
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no store at %s: %w", path, err)
	}
	st, err := store.OpenSQLite(ctx, path, proxy.AuditStoreOptions(cfg, kr, log))
	if err != nil {
		return nil, err
	}
	var s any = st
	tr, ok := s.(auditStore)
	if !ok {
		_ = st.Close()
		return nil, errors.New("this store keeps no audit trail")
	}
	return tr, nil
}

// auditPageSize is how many records one read of the trail returns.
var auditPageSize = 1000

func auditCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, auditUsage)
		return 2
	}
	switch args[0] {
	case "verify":
		return auditVerify(args[1:], stdout, stderr)
	case "export":
		return auditExport(args[1:], stdout, stderr)
	case "search":
		return auditSearch(args[1:], stdout, stderr)
	case "erase":
		return auditErase(args[1:], stdout, stderr)
	case "keygen":
		return auditKeygen(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, auditUsage)
		return 0
	}
	fmt.Fprintf(stderr, "smsproxy audit: unknown command %q\n%s\n", args[0], auditUsage)
	return 2
}

// auditFlags are the flags every audit command that reads the store shares.
type auditFlags struct {
	fs      *flag.FlagSet
	config  *string
	keyring *string
}

func newAuditFlags(name string, stderr io.Writer) *auditFlags {
	fs := flag.NewFlagSet("smsproxy audit "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &auditFlags{
		fs:      fs,
		config:  fs.String("config", "", "YAML config file (default: embedded defaults, region dev)"),
		keyring: fs.String("keyring", "", "keyring reference file:/path or env:NAME (default: the config's audit.keyring)"),
	}
}

// parse parses args; it reports a usage error itself.
func (a *auditFlags) parse(args []string, stderr io.Writer) bool {
	if err := a.fs.Parse(args); err != nil {
		return false
	}
	if a.fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", a.fs.Name(), a.fs.Arg(0))
		return false
	}
	return true
}

// open loads the config and the keyring and opens the store. It reports failures itself.
func (a *auditFlags) open(ctx context.Context, stderr io.Writer) (*config.Config, *audit.Keyring, auditStore, bool) {
	name := a.fs.Name()
	cfg := config.Default()
	if *a.config != "" {
		c, err := config.Load(*a.config)
		if err != nil {
			fmt.Fprintf(stderr, "%s: invalid config %s:\n%v\n", name, *a.config, err)
			return nil, nil, nil, false
		}
		cfg = c
	}
	log := newLogger(config.Log{Level: "warn", Format: "text"}, stderr)
	var kr *audit.Keyring
	var err error
	if *a.keyring != "" {
		kr, err = audit.LoadKeyring(*a.keyring)
		if err == nil && kr.Region() != cfg.Region {
			err = fmt.Errorf("%s: the keyring is for region %s, the configuration for region %s", proxy.CodeKeyringRegion, kr.Region(), cfg.Region)
		}
	} else {
		kr, err = proxy.LoadAuditKeyring(&cfg, slog.New(slog.DiscardHandler), false)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: cannot load the audit keyring: %v\n", name, err)
		return nil, nil, nil, false
	}
	st, err := openAuditStore(ctx, &cfg, kr, log)
	if err != nil {
		fmt.Fprintf(stderr, "%s: cannot open the store: %v\n", name, err)
		return nil, nil, nil, false
	}
	return &cfg, kr, st, true
}

func auditVerify(args []string, stdout, stderr io.Writer) int {
	af := newAuditFlags("verify", stderr)
	if !af.parse(args, stderr) {
		return 2
	}
	ctx := context.Background()
	_, kr, st, ok := af.open(ctx, stderr)
	if !ok {
		return 2
	}
	defer st.Close()
	start := time.Now()
	rep, err := st.VerifyAudit(ctx, kr)
	took := time.Since(start)
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy audit verify: cannot verify: %v\n", err)
		return 2
	}
	rate := ""
	if s := took.Seconds(); s > 0 && rep.Records > 0 {
		rate = fmt.Sprintf(", %.0f records/s", float64(rep.Records)/s)
	}
	counts := fmt.Sprintf("%d records (seq %d-%d), %d checkpoints (%d matched, %d before the first record), %d records after the last checkpoint; %s%s",
		rep.Records, rep.FirstSeq, rep.LastSeq, rep.Checkpoints, rep.CheckpointsMatched, rep.CheckpointsBeforeStart,
		rep.Unanchored, took.Round(time.Millisecond), rate)
	if p := rep.Problem; p != nil {
		fmt.Fprintf(stdout, "FAILED: first bad record seq %d: %s: %s\nchecked %s\n", p.Seq, p.Code, p.Detail, counts)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %s\n", counts)
	return 0
}

// parseWhen reads a -from or -to value: a date (2026-03-01, midnight UTC) or an RFC 3339 time.
func parseWhen(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("-%s must be a date such as 2026-03-01 or an RFC 3339 time", flagName)
}

// rangeFlags are -from, -to and -recipient.
type rangeFlags struct {
	from, to, recipient *string
}

func addRangeFlags(fs *flag.FlagSet) rangeFlags {
	return rangeFlags{
		from:      fs.String("from", "", "first day (2026-03-01, UTC) or RFC 3339 time, inclusive"),
		to:        fs.String("to", "", "last bound (2026-04-01, UTC) or RFC 3339 time, exclusive"),
		recipient: fs.String("recipient", "", "only the events of this E.164 number"),
	}
}

// query builds the audit query; it reports a bad value itself.
func (r rangeFlags) query(name string, stderr io.Writer) (store.AuditQuery, bool) {
	var q store.AuditQuery
	var err error
	if q.From, err = parseWhen("from", *r.from); err == nil {
		q.To, err = parseWhen("to", *r.to)
	}
	if err == nil && !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		err = errors.New("-from must be before -to")
	}
	if err == nil && *r.recipient != "" {
		var ph sms.Phone
		if ph, err = sms.ParsePhone(strings.TrimSpace(*r.recipient)); err != nil {
			err = errors.New("-recipient is not a valid E.164 phone number")
		}
		q.Recipient = ph.E164
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return q, false
	}
	q.Limit = auditPageSize
	return q, true
}

// eachRecord calls fn with every record q matches, page by page, in seq order.
func eachRecord(ctx context.Context, st store.AuditTrail, q store.AuditQuery, fn func(store.AuditRecord) error) error {
	if q.Limit <= 0 {
		q.Limit = auditPageSize
	}
	for {
		recs, err := st.AuditRange(ctx, q)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(recs) < q.Limit {
			return nil
		}
		q.AfterSeq = recs[len(recs)-1].Seq
	}
}

// exportRecord is one line of `smsproxy audit export`: every stored field of a record, so that anyone
// with the region's public keys can check the chain again, and its personal fields only when they were
// asked for with -decrypt and a keyring.
type exportRecord struct {
	Seq        int64           `json:"seq"`
	At         string          `json:"at"`
	Kind       string          `json:"kind"`
	MessageID  string          `json:"message_id,omitempty"`
	App        string          `json:"app,omitempty"`
	Data       json.RawMessage `json:"data"`
	SubjectRef string          `json:"subject_ref,omitempty"`
	KeyID      string          `json:"key_id,omitempty"`
	Sealed     []byte          `json:"sealed,omitempty"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
	// Personal is the decrypted {"to","body"} of the record (-decrypt only).
	Personal json.RawMessage `json:"personal,omitempty"`
	// PersonalError is the code of why Personal could not be opened, e.g. "subject_erased".
	PersonalError string `json:"personal_error,omitempty"`
}

func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("{}")
	}
	if !json.Valid(b) {
		q, _ := json.Marshal(string(b))
		return q
	}
	return b
}

func auditExport(args []string, stdout, stderr io.Writer) int {
	af := newAuditFlags("export", stderr)
	rf := addRangeFlags(af.fs)
	decrypt := af.fs.Bool("decrypt", false, "include the decrypted personal fields (needs -keyring)")
	out := af.fs.String("o", "", "write the JSON Lines to this file (mode 0600) instead of stdout")
	if !af.parse(args, stderr) {
		return 2
	}
	q, ok := rf.query(af.fs.Name(), stderr)
	if !ok {
		return 2
	}
	if *decrypt && *af.keyring == "" {
		fmt.Fprintln(stderr, "smsproxy audit export: -decrypt needs an explicit -keyring reference")
		return 2
	}
	ctx := context.Background()
	_, _, st, ok := af.open(ctx, stderr)
	if !ok {
		return 2
	}
	defer st.Close()
	w := stdout
	var f *os.File
	if *out != "" {
		var err error
		f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "smsproxy audit export: %v\n", err)
			return 1
		}
		w = f
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	n, opened, erased := 0, 0, 0
	err := eachRecord(ctx, st, q, func(r store.AuditRecord) error {
		line := exportRecord{
			Seq: r.Seq, At: r.At.UTC().Format(time.RFC3339Nano), Kind: r.Kind, MessageID: r.MessageID, App: r.App,
			Data: rawJSON(r.Data), SubjectRef: r.SubjectRef, KeyID: r.KeyID, Sealed: r.Sealed,
			PrevHash: hex.EncodeToString(r.PrevHash), Hash: hex.EncodeToString(r.Hash),
		}
		if *decrypt && len(r.Sealed) > 0 {
			p, err := st.OpenPersonal(ctx, r)
			switch {
			case err == nil:
				line.Personal = rawJSON(p)
				opened++
			case audit.CodeOf(err) != "":
				line.PersonalError = audit.CodeOf(err)
				if line.PersonalError == audit.CodeSubjectErased {
					erased++
				}
			default:
				return err
			}
		}
		n++
		return enc.Encode(line)
	})
	if err == nil {
		err = bw.Flush()
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy audit export: %v\n", err)
		return 1
	}
	msg := fmt.Sprintf("exported %d records", n)
	if *decrypt {
		msg += fmt.Sprintf(" (%d with decrypted personal fields, %d erased)", opened, erased)
	}
	if *out != "" {
		msg += " to " + *out
	}
	fmt.Fprintln(stderr, msg)
	return 0
}

// searchMessage is one message found by `smsproxy audit search`, with its events in seq order.
type searchMessage struct {
	id     string
	events []store.AuditRecord
}

func auditSearch(args []string, stdout, stderr io.Writer) int {
	af := newAuditFlags("search", stderr)
	rf := addRangeFlags(af.fs)
	if !af.parse(args, stderr) {
		return 2
	}
	if *rf.recipient == "" {
		fmt.Fprintln(stderr, "smsproxy audit search: -recipient is required")
		return 2
	}
	q, ok := rf.query(af.fs.Name(), stderr)
	if !ok {
		return 2
	}
	ctx := context.Background()
	_, _, st, ok := af.open(ctx, stderr)
	if !ok {
		return 2
	}
	defer st.Close()
	var msgs []*searchMessage
	byID := map[string]*searchMessage{}
	var others []store.AuditRecord
	err := eachRecord(ctx, st, q, func(r store.AuditRecord) error {
		if r.MessageID == "" {
			others = append(others, r)
			return nil
		}
		if byID[r.MessageID] == nil {
			m := &searchMessage{id: r.MessageID}
			byID[r.MessageID] = m
			msgs = append(msgs, m)
		}
		return nil
	})
	// A message's later events (sent, delivered) carry no personal data and so no subject: read them
	// by message id.
	for _, m := range msgs {
		if err != nil {
			break
		}
		err = eachRecord(ctx, st, store.AuditQuery{MessageID: m.id}, func(r store.AuditRecord) error {
			m.events = append(m.events, r)
			return nil
		})
	}
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy audit search: %v\n", err)
		return 1
	}
	w := bufio.NewWriter(stdout)
	writeSearch(w, sms.MaskPhone(q.Recipient), q, msgs, others)
	if err := w.Flush(); err != nil {
		return 1
	}
	return 0
}

// writeSearch prints what search found for a person: each message, its decision and why, and its
// status changes; then the recipient's other events (opt-outs, consents, erasure).
func writeSearch(w io.Writer, masked string, q store.AuditQuery, msgs []*searchMessage, others []store.AuditRecord) {
	span := "all time"
	if !q.From.IsZero() || !q.To.IsZero() {
		span = fmtWhen(q.From, "the beginning") + " to " + fmtWhen(q.To, "now")
	}
	fmt.Fprintf(w, "Recipient %s, %s: %d messages, %d other events\n", masked, span, len(msgs), len(others))
	for _, m := range msgs {
		fmt.Fprintln(w)
		app := ""
		if len(m.events) > 0 {
			app = m.events[0].App
		}
		fmt.Fprintf(w, "%s  app %s\n", m.id, app)
		for _, e := range m.events {
			var d map[string]any
			_ = json.Unmarshal(e.Data, &d)
			switch e.Kind {
			case store.AuditAccepted, store.AuditRefused:
				fmt.Fprintf(w, "  %s  %s", e.At.UTC().Format(time.RFC3339), strings.TrimPrefix(e.Kind, "message."))
				fmt.Fprintf(w, "  %s from %s to %s (%s), %s segment(s) %s\n", str(d["category"]), str(d["from"]), str(d["to"]),
					str(d["country"]), str(d["segments"]), str(d["encoding"]))
				decision := "allowed"
				if e.Kind == store.AuditRefused {
					decision = "refused"
				}
				fmt.Fprintf(w, "      decision: %s by policy revision %s\n", decision, str(d["policy_revision"]))
				for _, r := range reasons(d["reasons"]) {
					fmt.Fprintf(w, "      reason: %s\n", r)
				}
			default:
				fmt.Fprintf(w, "  %s  %s%s\n", e.At.UTC().Format(time.RFC3339), strings.TrimPrefix(e.Kind, "message."), details(d))
			}
		}
	}
	if len(others) > 0 {
		fmt.Fprintln(w, "\nOther events of this recipient:")
		for _, e := range others {
			var d map[string]any
			_ = json.Unmarshal(e.Data, &d)
			fmt.Fprintf(w, "  seq %d  %s  %s  app %s%s\n", e.Seq, e.At.UTC().Format(time.RFC3339), e.Kind, e.App, details(d))
		}
	}
}

func fmtWhen(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.UTC().Format(time.RFC3339)
}

// str prints a JSON scalar, or "-" when it is missing.
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// reasons prints a decision's reasons: "code: message [rule]".
func reasons(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, r := range list {
		m, _ := r.(map[string]any)
		if m == nil {
			continue
		}
		s := str(m["code"])
		if msg, ok := m["message"].(string); ok && msg != "" {
			s += ": " + msg
		}
		if rule, ok := m["rule"].(string); ok && rule != "" {
			s += " [" + rule + "]"
		}
		out = append(out, s)
	}
	return out
}

// details prints an event's data as sorted key=value pairs.
func details(d map[string]any) string {
	if len(d) == 0 {
		return ""
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString("  " + k + "=" + str(d[k]))
	}
	return b.String()
}

func auditErase(args []string, stdout, stderr io.Writer) int {
	af := newAuditFlags("erase", stderr)
	recipient := af.fs.String("recipient", "", "the E.164 number of the data subject to erase")
	by := af.fs.String("by", "", "who asked for the erasure, e.g. dpo@example.com or a ticket id")
	if !af.parse(args, stderr) {
		return 2
	}
	ph, err := sms.ParsePhone(strings.TrimSpace(*recipient))
	if err != nil {
		fmt.Fprintln(stderr, "smsproxy audit erase: -recipient must be a valid E.164 phone number")
		return 2
	}
	who := strings.TrimSpace(*by)
	if who == "" || len(who) > 128 {
		fmt.Fprintln(stderr, "smsproxy audit erase: -by must name who asked for the erasure (1-128 characters)")
		return 2
	}
	ctx := context.Background()
	_, _, st, ok := af.open(ctx, stderr)
	if !ok {
		return 2
	}
	defer st.Close()
	res, err := st.EraseSubject(ctx, ph.E164, who+" (smsproxy audit erase)")
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy audit erase: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "erased %s: audit event seq %d", sms.MaskPhone(ph.E164), res.Seq)
	if !res.Existed {
		fmt.Fprint(stdout, " (nothing had been sealed for this number)")
	}
	fmt.Fprintln(stdout)
	return 0
}

func auditKeygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("smsproxy audit keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "the new keyring file (created with mode 0600, never overwritten)")
	region := fs.String("region", "", "the region of the keyring (default: the config's region)")
	cfgPath := fs.String("config", "", "YAML config file whose region to use")
	rotate := fs.String("rotate", "", "keyring reference to copy with a new active data key instead of generating one")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: smsproxy audit keygen -o file [-region sg | -config f] [-rotate ref]")
		return 2
	}
	now := time.Now()
	var kr *audit.Keyring
	var err error
	if *rotate != "" {
		if kr, err = audit.LoadKeyring(*rotate); err == nil {
			// Data key ids are "dk-" and the time to the second; a second rotation within the same
			// second takes the next free second.
			for slices.Contains(kr.DataKeyIDs(), "dk-"+now.UTC().Format("20060102T150405Z")) {
				now = now.Add(time.Second)
			}
			kr, err = kr.WithNewDataKey(now)
		}
	} else {
		r := *region
		if r == "" {
			cfg := config.Default()
			if *cfgPath != "" {
				if cfg, err = config.Load(*cfgPath); err != nil {
					fmt.Fprintf(stderr, "smsproxy audit keygen: invalid config %s:\n%v\n", *cfgPath, err)
					return 2
				}
			}
			r = cfg.Region
		}
		kr, err = audit.GenerateKeyring(r, now)
	}
	var data []byte
	if err == nil {
		data, err = kr.Export()
	}
	if err == nil {
		err = writeNewFile(*out, append(data, '\n'))
	}
	if err != nil {
		fmt.Fprintf(stderr, "smsproxy audit keygen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote the %s keyring to %s (mode 0600): signing key %s, active data key %s, data keys %s\n",
		kr.Region(), *out, kr.SigningKeyID(), kr.ActiveDataKeyID(), strings.Join(kr.DataKeyIDs(), ","))
	return 0
}

// writeNewFile writes data to a new file with mode 0600 and syncs it; an existing file is an error.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; keyrings are never overwritten", path)
	}
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}
