package load

import (
	"errors"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// BarePath is the only path the bare server answers, the proxy's native submit endpoint.
const BarePath = "/v1/messages"

// BareServer is a minimal fasthttp server that answers POST /v1/messages with 201 and a small JSON
// document shaped like the proxy's, doing no other work. Driving it with the same settings as the proxy
// shows what HTTP alone costs on the machine, so the proxy's figures can be read as a ratio.
type BareServer struct {
	// URL is the submit endpoint, http://127.0.0.1:<port>/v1/messages.
	URL string

	srv  *fasthttp.Server
	ln   net.Listener
	done chan error
	seq  atomic.Uint64
}

// StartBare starts a bare server on a random loopback port.
func StartBare() (*BareServer, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, errors.New("bare_listen: " + err.Error())
	}
	b := &BareServer{URL: "http://" + ln.Addr().String() + BarePath, ln: ln, done: make(chan error, 1)}
	b.srv = &fasthttp.Server{Handler: b.handle, NoDefaultServerHeader: true, Name: "smsbench-bare"}
	go func() { b.done <- b.srv.Serve(ln) }()
	return b, nil
}

var (
	bareAccepted = []byte(`","status":"accepted","encoding":"GSM-7","segments":1,"provider":"bare"}`)
	bareNotFound = []byte(`{"code":"not_found","message":"Only POST /v1/messages is served."}`)
)

func (b *BareServer) handle(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	if !ctx.IsPost() || string(ctx.Path()) != BarePath {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetBody(bareNotFound)
		return
	}
	var buf [128]byte
	out := append(buf[:0], `{"id":"msg_`...)
	out = strconv.AppendUint(out, b.seq.Add(1), 10)
	out = append(out, bareAccepted...)
	ctx.SetStatusCode(fasthttp.StatusCreated)
	ctx.SetBody(out)
}

// Served returns how many messages the server accepted.
func (b *BareServer) Served() uint64 { return b.seq.Load() }

// Close stops the server and waits for it to return.
func (b *BareServer) Close() error {
	err := b.srv.Shutdown()
	if serveErr := <-b.done; err == nil {
		err = serveErr
	}
	return err
}
