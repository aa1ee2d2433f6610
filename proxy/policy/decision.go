package policy

// Decision is the policy's answer for one message. Its shape is final: later policy packs add
// reasons, limits, masks and obligations but never change their meaning.
type Decision struct {
	// Allow is true when the message may be sent.
	Allow bool `json:"allow"`
	// Reasons say why a message was refused (and may note why it was allowed, e.g. an exception used).
	Reasons []Reason `json:"reasons"`
	// Limits are the rate limits the proxy must reserve before the message is accepted.
	Limits []Limit `json:"limits"`
	// Route narrows or orders the providers to try.
	Route Route `json:"route"`
	// Masks say how each personal field is masked in records and logs.
	Masks []Mask `json:"masks"`
	// Obligations are changes the proxy must make before sending, e.g. a footer to append.
	Obligations []Obligation `json:"obligations"`
	// Revision is the revision of the bundle whose rules made this decision, set by the Prepared that
	// evaluated it, so a record of the decision names that bundle even if another is swapped in
	// meanwhile. It is not part of the decision document: decoding never reads it, and it is left out
	// of the decision's JSON (which is the document's shape).
	Revision string `json:"-"`
}

// Reason is a stable code, a sentence a support agent can read, and the rule that produced it.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Rule    string `json:"rule"`
}

// Limit is a GCRA limit: at most Rate events per Period, with Burst allowed at once; or, with Window,
// a cap of at most Rate events in any window of Period.
type Limit struct {
	// Name is the region limit it applies, e.g. "otp_per_device"; it names the rule of a denial,
	// which, unlike Key, holds no number or device id. Optional: a denial then names Code.
	Name string `json:"limit,omitempty"`
	// Key identifies the counter, e.g. "otp:device:abc" or "app:payments".
	Key string `json:"key"`
	// Rate is the number of events allowed per Period.
	Rate int `json:"rate"`
	// Period is a Go duration string such as "60s" or "24h".
	Period string `json:"period"`
	// Burst is how many events may come at once; 0 means Rate.
	Burst int `json:"burst"`
	// Window makes the limit a cap on every window: at most Rate events in any Period (Burst is then
	// 0), where a GCRA rate admits up to Burst + Rate - 1 per Period.
	Window bool `json:"window,omitempty"`
	// Code is the denial code when the limit is exceeded.
	Code string `json:"code"`
	// Message is the sentence shown when the limit is exceeded.
	Message string `json:"message"`
}

// Route lists the providers to try in order; empty means the region's default order.
type Route struct {
	Providers []string `json:"providers"`
}

// Mask names a field and how it is masked: "phone" keeps the country code and last digits,
// "full" hides everything, "last4" keeps the last four characters.
type Mask struct {
	Field string `json:"field"`
	Style string `json:"style"`
}

// Obligation is an action the proxy must take before sending. Kind "append_footer" appends Value to
// the body unless the body already contains it.
type Obligation struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}
