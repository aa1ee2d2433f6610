package sms

import "sync"

// phoneCacheGeneration is how many numbers one generation of the cache holds; the cache keeps
// at most two generations, so at most 2×phoneCacheGeneration numbers (about 200 bytes each).
const phoneCacheGeneration = 4096

// phoneCache remembers recently parsed valid numbers (destinations as Phone, senders as Sender): libphonenumber's pattern matching costs
// microseconds per number and the same recipients come back (resent codes, notifications
// for one transfer). It is a two-generation cache: hits in the old generation are promoted;
// when the new one fills up, the old one is dropped. That bounds memory like an LRU without
// per-entry bookkeeping. Only valid numbers are stored, keyed by their E.164 form.
type phoneCache[V any] struct {
	mu       sync.Mutex
	cur, old map[string]V
}

// phones and senderNumbers are the caches of ParsePhone and ClassifySender.
var (
	phones        = newPhoneCache[Phone]()
	senderNumbers = newPhoneCache[Sender]()
)

func newPhoneCache[V any]() *phoneCache[V] {
	return &phoneCache[V]{cur: make(map[string]V)}
}

// get returns the cached number for an E.164 string.
func (c *phoneCache[V]) get(e164 string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.cur[e164]; ok {
		return p, true
	}
	p, ok := c.old[e164]
	if ok {
		c.putLocked(e164, p)
	}
	return p, ok
}

// put stores a valid number under the string it was parsed from.
func (c *phoneCache[V]) put(e164 string, p V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(e164, p)
}

func (c *phoneCache[V]) putLocked(e164 string, p V) {
	if len(c.cur) >= phoneCacheGeneration {
		c.old, c.cur = c.cur, make(map[string]V, phoneCacheGeneration)
	}
	c.cur[e164] = p
}

// len returns how many numbers the cache holds.
func (c *phoneCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}
