package provider

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os/exec"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Restart and reconnect pacing. A process that stayed up for healthyUptime starts again after
// backoffMin; one that keeps dying waits twice as long each time, up to backoffMax.
const (
	backoffMin          = 100 * time.Millisecond
	backoffMax          = 5 * time.Second
	healthyUptime       = 10 * time.Second
	defaultStartTimeout = 10 * time.Second
)

// LaunchConfig says how to run one provider plugin.
type LaunchConfig struct {
	// Name names the plugin in logs and errors, e.g. "simulator".
	Name string
	// Cmd returns a new command for every (re)start of the plugin process. Built-in providers
	// re-execute the smsproxy binary, e.g. exec.Command(self, "plugin", "simulator").
	Cmd func() *exec.Cmd
	// Checksum, if set, is the sha256 of the plugin binary; a binary that differs is not started.
	// The binary is then copied, as checked, into a private directory under PinDir, and the copy
	// is what runs, at every restart too, so that replacing the file afterwards changes nothing.
	Checksum []byte
	// PinDir is where checked copies of binaries are kept while the plugin runs; "" means the
	// system's temporary directory. It must allow executing files (not mounted noexec).
	PinDir string
	// Config is handed to the plugin's Configure after every start (JSON bytes); it is never logged.
	Config []byte
	// Logger receives the host's and the plugin's log records; nil means slog.Default().
	Logger *slog.Logger
	// StartTimeout bounds one start: process up, handshake done, Configure answered. 0 means 10s.
	StartTimeout time.Duration
}

// Validate reports the first problem with c.
func (c *LaunchConfig) Validate() error {
	switch {
	case c.Name == "":
		return &Error{Code: CodeInvalidConfig, Message: "launch: name is empty"}
	case c.Cmd == nil:
		return &Error{Code: CodeInvalidConfig, Message: "launch: no command for plugin " + c.Name}
	case len(c.Checksum) != 0 && len(c.Checksum) != sha256.Size:
		return &Error{Code: CodeInvalidConfig, Message: "launch: checksum of plugin " + c.Name + " is not a sha256 sum"}
	case c.StartTimeout < 0:
		return &Error{Code: CodeInvalidConfig, Message: "launch: negative start timeout for plugin " + c.Name}
	}
	return nil
}

// Plugin is a supervised provider plugin process; it implements Provider. When the process dies,
// calls in flight fail with an error IsRetryable reports true, calls made while it is down fail the
// same way at once, and a background loop starts it again (with backoff), configures it and puts it
// back in service. Receive keeps running across restarts.
type Plugin struct {
	cfg  LaunchConfig
	log  *slog.Logger
	hlog *hostLogger

	pinned string // the checked copy of the binary that runs (Checksum set), else ""

	mu       sync.Mutex
	inst     *instance
	changed  chan struct{} // closed and replaced whenever inst or closed changes
	closed   bool
	restarts int

	stop     context.Context
	stopFunc context.CancelFunc
	done     chan struct{} // closed when supervise returns
}

var _ Provider = (*Plugin)(nil)

// instance is one run of the plugin process.
type instance struct {
	client  *plugin.Client
	rpc     *grpcClient
	pid     int
	started time.Time
}

// Launch starts the plugin process, checks the handshake (and the checksum, if set), configures it,
// and returns it supervised. ctx bounds the first Configure call (StartTimeout bounds the process
// start); the plugin then runs, restarted as needed, until Close.
func Launch(ctx context.Context, cfg LaunchConfig) (*Plugin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = defaultStartTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("plugin", cfg.Name)
	stop, stopFunc := context.WithCancel(context.Background())
	p := &Plugin{
		cfg:      cfg,
		log:      log,
		hlog:     newHostLogger(log),
		changed:  make(chan struct{}),
		stop:     stop,
		stopFunc: stopFunc,
		done:     make(chan struct{}),
	}
	if len(cfg.Checksum) > 0 {
		cmd := cfg.Cmd()
		if cmd == nil {
			stopFunc()
			return nil, &Error{Code: CodeStart, Message: "no command for plugin " + cfg.Name}
		}
		var err error
		if p.pinned, err = pin(cmd.Path, cfg.PinDir, cfg.Checksum); err != nil {
			stopFunc()
			if errors.Is(err, errChecksum) {
				return nil, &Error{Code: CodeChecksum, Message: "plugin " + cfg.Name + ": the binary does not match its checksum", Err: err}
			}
			return nil, &Error{Code: CodeStart, Message: "plugin " + cfg.Name + ": cannot copy the binary to check it: " + err.Error(), Err: err}
		}
	}
	inst, err := p.start(ctx)
	if err != nil {
		stopFunc()
		unpin(p.pinned)
		return nil, err
	}
	p.inst = inst
	log.Debug("plugin started", "pid", inst.pid)
	go p.supervise()
	return p, nil
}

// start runs the process once, up to a configured plugin.
func (p *Plugin) start(ctx context.Context) (*instance, error) {
	cmd := p.cfg.Cmd()
	if cmd == nil {
		return nil, &Error{Code: CodeStart, Message: "no command for plugin " + p.cfg.Name}
	}
	var secure *plugin.SecureConfig
	if p.pinned != "" {
		// The checked copy runs; go-plugin checks it again, which only a change by this process's
		// own user could fail.
		cmd.Path = p.pinned
		secure = &plugin.SecureConfig{Checksum: p.cfg.Checksum, Hash: sha256.New()}
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          pluginSet(nil),
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     p.cfg.StartTimeout,
		Logger:           p.hlog,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes))},
	})
	started := time.Now()
	cp, err := client.Client()
	if err != nil {
		client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, &Error{Code: CodeChecksum, Message: "plugin " + p.cfg.Name + ": the binary does not match its checksum", Err: err}
		}
		return nil, &Error{Code: CodeStart, Message: "plugin " + p.cfg.Name + ": " + err.Error(), Retryable: true, Err: err}
	}
	raw, err := cp.Dispense(PluginName)
	if err != nil {
		client.Kill()
		return nil, &Error{Code: CodeStart, Message: "plugin " + p.cfg.Name + ": " + err.Error(), Err: err}
	}
	rpc, ok := raw.(*grpcClient)
	if !ok {
		client.Kill()
		return nil, &Error{Code: CodeStart, Message: "plugin " + p.cfg.Name + ": unexpected client type"}
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	err = rpc.configure(cctx, p.cfg.Config)
	cancel()
	if err != nil {
		client.Kill()
		return nil, err
	}
	inst := &instance{client: client, rpc: rpc, started: started}
	if rc := client.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	return inst, nil
}

// setInstance replaces the current instance and wakes everyone waiting for a change. It reports
// false, and changes nothing, once the plugin is closed.
func (p *Plugin) setInstance(inst *instance, restarted bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.inst = inst
	if restarted {
		p.restarts++
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return true
}

// supervise waits for the process to exit and starts it again, until Close.
func (p *Plugin) supervise() {
	defer close(p.done)
	delay := backoffMin
	for {
		p.mu.Lock()
		inst := p.inst
		p.mu.Unlock()
		select {
		case <-p.stop.Done():
			return
		case <-inst.rpc.exited:
		}
		if !p.setInstance(nil, false) {
			return
		}
		uptime := time.Since(inst.started)
		inst.client.Kill() // The process is gone; this reaps go-plugin's goroutines.
		if uptime >= healthyUptime {
			delay = backoffMin
		}
		p.log.Warn("plugin process exited; restarting", "pid", inst.pid, "uptime", uptime.Round(time.Millisecond), "delay", delay)
		for {
			t := time.NewTimer(delay)
			select {
			case <-p.stop.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(2*delay, backoffMax)
			next, err := p.start(p.stop)
			if err == nil {
				if !p.setInstance(next, true) {
					next.client.Kill()
					return
				}
				p.log.Info("plugin restarted", "pid", next.pid)
				break
			}
			if p.stop.Err() != nil {
				return
			}
			p.log.Warn("plugin restart failed", "code", ErrorCode(err), "err", err, "retry_in", delay)
		}
	}
}

// current returns the running instance, or an error saying why there is none.
func (p *Plugin) current() (*instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// No call is made in either case, so the errors say NotSent.
	switch {
	case p.closed:
		e := p.closedError()
		e.NotSent = true
		return nil, e
	case p.inst == nil:
		return nil, &Error{Code: CodeUnavailable, Message: "plugin " + p.cfg.Name + " is restarting", Retryable: true, NotSent: true}
	}
	return p.inst, nil
}

// closedError returns the error of a call to a closed plugin. It does not say NotSent: a call in
// flight when the plugin was closed may have reached the provider.
func (p *Plugin) closedError() *Error {
	return &Error{Code: CodeClosed, Message: "plugin " + p.cfg.Name + " is closed"}
}

// callError turns the error of a call that failed because the plugin was closed under it into a
// closed error.
func (p *Plugin) callError(err error) error {
	if ErrorCode(err) == CodeUnavailable {
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return p.closedError()
		}
	}
	return err
}

// Capabilities asks the plugin to describe itself.
func (p *Plugin) Capabilities(ctx context.Context) (Capabilities, error) {
	inst, err := p.current()
	if err != nil {
		return Capabilities{}, err
	}
	c, err := inst.rpc.Capabilities(ctx)
	return c, p.callError(err)
}

// Send hands a batch to the plugin in one call. If the process dies or is down, the error is
// retryable: send the same batch again (same idempotency keys) once the plugin is back, or
// elsewhere. While the process is down, or after Close, no call is made and the error says
// NotSent.
func (p *Plugin) Send(ctx context.Context, reqs []SendRequest) ([]SendResult, error) {
	inst, err := p.current()
	if err != nil {
		return nil, err
	}
	res, err := inst.rpc.Send(ctx, reqs)
	return res, p.callError(err)
}

// Receive calls handle for each receipt and inbound message, several at once, until ctx ends (it then
// returns ctx's error) or the plugin is closed. A broken stream is opened again, on the restarted
// process if the old one died; events not acknowledged are delivered again by the plugin, so handle
// must be idempotent.
func (p *Plugin) Receive(ctx context.Context, handle func(Event) error) error {
	delay := backoffMin
	for {
		p.mu.Lock()
		closed, inst, changed := p.closed, p.inst, p.changed
		p.mu.Unlock()
		if closed {
			return p.closedError()
		}
		if inst == nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
				continue
			}
		}
		opened := time.Now()
		err := inst.rpc.Receive(ctx, handle)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(opened) >= healthyUptime {
			delay = backoffMin
		}
		select {
		case <-inst.rpc.exited:
			// The supervisor replaces the instance; wait for that rather than spin on a dead one.
			p.log.Debug("receive stream ended with the plugin process")
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
			}
			continue
		default:
		}
		if IsRetryable(err) {
			p.log.Debug("receive stream ended; reopening", "code", ErrorCode(err), "retry_in", delay)
		} else {
			p.log.Warn("receive stream failed; reopening", "code", ErrorCode(err), "err", err, "retry_in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-changed:
		case <-inst.rpc.exited:
		case <-t.C:
		}
		t.Stop()
		delay = min(2*delay, backoffMax)
	}
}

// Ready waits until the plugin process is up (at once, unless it is restarting), ctx ends, or the
// plugin is closed.
func (p *Plugin) Ready(ctx context.Context) error {
	for {
		p.mu.Lock()
		closed, inst, changed := p.closed, p.inst, p.changed
		p.mu.Unlock()
		switch {
		case closed:
			return p.closedError()
		case inst != nil:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Pid returns the process id of the running plugin process, or 0 while it is down.
func (p *Plugin) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inst == nil {
		return 0
	}
	return p.inst.pid
}

// Restarts returns how many times the process was started again after it died.
func (p *Plugin) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Close stops supervision, ends the plugin process (gracefully, then by force after two seconds)
// and waits for it. Calls in flight fail; later calls return a "plugin_closed" error. Close is safe
// to call more than once.
func (p *Plugin) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return nil
	}
	p.closed = true
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()

	p.stopFunc()
	<-p.done
	p.mu.Lock()
	inst := p.inst
	p.inst = nil
	p.mu.Unlock()
	if inst != nil {
		inst.client.Kill()
	}
	unpin(p.pinned)
	return nil
}
