package provider

import (
	"runtime"
	"slices"
	"sync"
)

// sendQueued sends *queue in frames of at most max items until it is empty, unless another call is
// already doing so (*sending), in which case that call sends what was just queued. mu guards queue
// and sending; it is held on entry and on return and released around each send. The call that sends
// yields once first, so that the calls made runnable together with it queue theirs and share its
// frame; with nothing else runnable that returns at once, so a lone item is never held back. After a
// send error the items still queued are dropped and the error is returned.
func sendQueued[T any](mu *sync.Mutex, queue *[]T, sending *bool, max int, send func([]T) error) error {
	if *sending {
		return nil
	}
	*sending = true
	mu.Unlock()
	runtime.Gosched()
	mu.Lock()
	var err error
	for len(*queue) > 0 {
		// A new slice for each frame: gRPC allows no change to a message after Send.
		n := min(len(*queue), max)
		items := slices.Clone((*queue)[:n])
		rest := copy(*queue, (*queue)[n:])
		clear((*queue)[rest:])
		*queue = (*queue)[:rest]
		mu.Unlock()
		err = send(items)
		mu.Lock()
		if err != nil {
			clear(*queue)
			*queue = (*queue)[:0]
			break
		}
	}
	*sending = false
	return err
}
