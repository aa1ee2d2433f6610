package provider

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
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

// CodeFailed means the plugin process cannot be started again, e.g. because the binary now speaks
// another protocol version; the supervisor gave up. Calls fail at once with an error that is not
// retryable and says NotSent, so that the dispatcher moves messages to another provider. Only a
// new Launch (a restart of smsproxy) brings the plugin back.
const CodeFailed = "plugin_failed"

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
// back in service. Receive keeps running across restarts. A restart that fails for a reason no
// retry heals (see permanent), such as a binary that now speaks another protocol version, ends the
// restarts: every call then fails at once with a "plugin_failed" error that is not retryable.
type Plugin struct {
	cfg  LaunchConfig
	log  *slog.Logger
	hlog *hostLogger

	pinned string // the checked copy of the binary that runs (Checksum set), else ""

	mu       sync.Mutex
	inst     *instance
	changed  chan struct{} // closed and replaced whenever inst or closed changes
	closed   bool
	failed   *Error // set when the supervisor gave up; calls then return a copy
	restarts int

	stop     context.Context
	stopFunc context.CancelFunc
	done     chan struct{} // closed when supervise returns
}

var _ Provider = (*Plugin)(nil)

// instance is one run of the plugin process.
type instance struct {
	client  *plugin.Client
	kill    context.CancelFunc // kills the process; called once it is reaped, to free the context
	rpc     *grpcClient
	pid     int
	started time.Time
}

// Launch starts the plugin process, checks the handshake (and the checksum, if set), configures it,
// and returns it supervised. ctx bounds the first start: when it ends, the process is killed even
// before its handshake; StartTimeout bounds the start as well. The plugin then runs, restarted as
// needed, until Close.
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

// start runs the process once, up to a configured plugin. When ctx ends first, the process is
// killed at once, even before its handshake. An error with code CodeStart or CodeChecksum that is
// not retryable cannot heal by starting again (see permanent).
func (p *Plugin) start(ctx context.Context) (*instance, error) {
	orig := p.cfg.Cmd()
	if orig == nil {
		return nil, &Error{Code: CodeStart, Message: "no command for plugin " + p.cfg.Name}
	}
	// go-plugin waits for the handshake under its own lock and only for StartTimeout, and reading
	// cmd.Process while it starts the command would race; a command bound to its own context is
	// killed by os/exec instead. The context is cancelled only if ctx ends during the start, or
	// once the process has been reaped.
	killCtx, kill := context.WithCancel(context.Background())
	cmd := killable(killCtx, orig)
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
	cp, err := handshake(ctx, client, kill)
	fail := func() {
		client.Kill()
		kill()
	}
	if err != nil {
		fail()
		switch {
		case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
			return nil, &Error{Code: CodeChecksum, Message: "plugin " + p.cfg.Name + ": the binary does not match its checksum", Err: err}
		case handshakeRefused(err):
			return nil, &Error{Code: CodeStart, Message: "plugin " + p.cfg.Name + ": " + err.Error(), Err: err}
		}
		return nil, &Error{Code: CodeStart, Message: "plugin " + p.cfg.Name + ": " + err.Error(), Retryable: true, Err: err}
	}
	raw, err := cp.Dispense(PluginName)
	if err != nil {
		fail()
		return nil, &Error{Code: CodeStart, Message: "plugin " + p.cfg.Name + ": " + err.Error(), Err: err}
	}
	rpc, ok := raw.(*grpcClient)
	if !ok {
		fail()
		return nil, &Error{Code: CodeStart, Message: "plugin " + p.cfg.Name + ": unexpected client type"}
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	err = rpc.configure(cctx, p.cfg.Config)
	cancel()
	if err != nil {
		fail()
		return nil, err
	}
	inst := &instance{client: client, kill: kill, rpc: rpc, started: started}
	if rc := client.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	return inst, nil
}

// handshake starts the process and waits for its handshake, until ctx ends: kill then kills the
// process, which ends the wait at once.
func handshake(ctx context.Context, client *plugin.Client, kill context.CancelFunc) (plugin.ClientProtocol, error) {
	type result struct {
		cp  plugin.ClientProtocol
		err error
	}
	done := make(chan result, 1)
	go func() {
		cp, err := client.Client()
		done <- result{cp, err}
	}()
	select {
	case r := <-done:
		return r.cp, r.err
	case <-ctx.Done():
		kill()
		r := <-done // the process is gone, so this is quick
		if r.err == nil {
			r.err = ctx.Err()
		}
		return nil, r.err
	}
}

// killable returns a copy of cmd that os/exec kills when ctx ends before the process has exited.
// exec.Cmd has no way to add a context to a command already made, so the settings are copied.
func killable(ctx context.Context, cmd *exec.Cmd) *exec.Cmd {
	c := exec.CommandContext(ctx, cmd.Path)
	c.Args = cmd.Args
	c.Env = cmd.Env
	c.Dir = cmd.Dir
	c.Stdin, c.Stdout, c.Stderr = cmd.Stdin, cmd.Stdout, cmd.Stderr
	c.ExtraFiles = cmd.ExtraFiles
	c.SysProcAttr = cmd.SysProcAttr
	c.WaitDelay = cmd.WaitDelay
	c.Err = cmd.Err
	if cmd.Cancel != nil {
		c.Cancel = cmd.Cancel
	}
	return c
}

// handshakeRefused reports whether err is go-plugin refusing the plugin at the handshake: another
// plugin protocol version, another go-plugin core protocol, or net/rpc instead of gRPC. The binary
// answers the same way at every start, so no restart heals it. go-plugin returns these as plain
// text, hence the match on its (long-stable) messages; TestLaunchRefusesOtherProtocol pins them.
func handshakeRefused(err error) bool {
	msg := err.Error()
	for _, s := range []string{
		"incompatible API version with plugin",
		"incompatible core API version with plugin",
		"unsupported plugin protocol",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// permanent reports whether a start failed for a reason no restart can heal: a handshake refusal,
// a checksum mismatch (the pinned copy is private and never refreshed), no command, or a plugin
// that cannot be dispensed. Errors of Configure are not permanent, even invalid_config: the same
// configuration was accepted before, so a refusal depends on something outside that may change.
// Nor is a process that fails or dies before its handshake, which a crash or a lack of resources
// can explain.
func permanent(err error) bool {
	switch ErrorCode(err) {
	case CodeStart, CodeChecksum:
		return !IsRetryable(err)
	}
	return false
}

// fail puts the plugin in its failed state after a permanent start error: calls then fail at once
// with code CodeFailed, and everyone waiting for a change is woken.
func (p *Plugin) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.failed = &Error{Code: CodeFailed, Message: "plugin " + p.cfg.Name + " cannot be started again: " + err.Error(), Err: err}
	close(p.changed)
	p.changed = make(chan struct{})
}

// failedError returns the error of a call to a failed plugin. It says NotSent, since no call is
// made, and is not retryable.
func (p *Plugin) failedError() *Error {
	e := *p.failed
	e.NotSent = true
	return &e
}

// end ends inst's process (gracefully, then by force), waits for it and frees what it holds.
func (inst *instance) end() {
	inst.client.Kill()
	inst.kill()
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
		inst.end() // The process is gone; this reaps go-plugin's goroutines.
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
					next.end()
					return
				}
				p.log.Info("plugin restarted", "pid", next.pid)
				break
			}
			if p.stop.Err() != nil {
				return
			}
			if permanent(err) {
				p.fail(err)
				p.log.Error("plugin cannot be started again; giving up until smsproxy is restarted", "code", ErrorCode(err), "err", err)
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
	case p.failed != nil:
		return nil, p.failedError()
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
		var failure error
		if p.failed != nil {
			failure = p.failedError()
		}
		p.mu.Unlock()
		if closed {
			return p.closedError()
		}
		if failure != nil {
			return failure
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
		var failure error
		if p.failed != nil {
			failure = p.failedError()
		}
		p.mu.Unlock()
		switch {
		case closed:
			return p.closedError()
		case failure != nil:
			return failure
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
		inst.end()
	}
	unpin(p.pinned)
	return nil
}
