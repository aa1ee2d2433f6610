package proxy

import (
	"context"
	"sync"
)

// keyLocks lets one request at a time through Submit per app and Idempotency-Key in this process.
// A client that retries before its first attempt has answered (a timeout shorter than the proxy's
// commit, two workers picking up one job) would otherwise see both requests pass the replay lookup,
// both reserve the message's limits and both reach the store, where the second is recognised as a
// duplicate only after its limits were counted, and could have been answered 429 instead of the
// first answer. Waiting here, the second request finds the first one's record and replays it.
// Across replicas the store's unique (app, key) index still decides which request wins.
type keyLocks struct {
	mu   sync.Mutex
	busy map[string]chan struct{} // closed when its holder is done
}

// lock waits until no other request holds app's key, then holds it. It returns the function that
// releases it, or ctx's error if ctx ended first.
func (k *keyLocks) lock(ctx context.Context, app, key string) (func(), error) {
	id := app + "\x00" + key
	for {
		k.mu.Lock()
		if k.busy == nil {
			k.busy = make(map[string]chan struct{})
		}
		ch, held := k.busy[id]
		if !held {
			ch = make(chan struct{})
			k.busy[id] = ch
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.busy, id)
				k.mu.Unlock()
				close(ch)
			}, nil
		}
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
