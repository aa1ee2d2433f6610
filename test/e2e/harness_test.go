// Package e2e starts the real smsproxy binary with its real simulator plugin process and drives it
// over HTTP, as an app would.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the smsproxy binary TestMain builds once for every test.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "smsproxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "smsproxy")
	build := exec.Command("go", "build", "-o", binary, "github.com/smsproxy/smsproxy/cmd/smsproxy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building smsproxy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	apiKey   = "e2e-test-api-key-0123456789"
	otherKey = "e2e-other-app-key-9876543210"
)

// instance is one running smsproxy process.
type instance struct {
	t       *testing.T
	dir     string
	addr    string
	cmd     *exec.Cmd
	logs    *syncBuffer
	exited  chan struct{}
	waitErr error
}

// config returns a config file for a proxy whose data lives in dir.
func writeConfig(t *testing.T, dir, addr string, receiptDelay string, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`region: dev
listen: %s
data_dir: %s
shutdown_timeout: 10s
log: {level: info, format: json}
apps:
  - name: e2e
    key: {env: SMSPROXY_E2E_KEY}
  - name: other
    key: {env: SMSPROXY_E2E_OTHER_KEY}
providers:
  simulator:
    config:
      latency: 1ms
      receipt_delay: %s
      state_dir: %s
dispatch:
  breaker_open_for: 500ms
%s`, addr, filepath.Join(dir, "data"), receiptDelay, filepath.Join(dir, "provider"), extra)
	path := filepath.Join(dir, "smsproxy.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// trackSources reads every source file the binary is built from. The binary is built by a go
// command the test runs, so go test would otherwise not know that these tests depend on them and
// would answer a changed proxy with a cached pass; files a test reads are part of its cache key.
func trackSources() {
	_ = filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if name := d.Name(); path != "../.." && (strings.HasPrefix(name, ".") || name == "data" || name == "test") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".rego", ".yaml", ".sql", ".mod", ".sum":
			_, _ = os.ReadFile(path)
		}
		return nil
	})
}

var trackSourcesOnce sync.Once

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs smsproxy with the config in dir and waits until /readyz answers.
func start(t *testing.T, dir, addr, receiptDelay string) *instance {
	t.Helper()
	return startWith(t, dir, addr, receiptDelay, "")
}

// startConfigured runs smsproxy with the config file at cfgPath and waits until /readyz answers.
func startConfigured(t *testing.T, dir, addr, cfgPath string) *instance {
	trackSourcesOnce.Do(trackSources)
	t.Helper()
	in := &instance{t: t, dir: dir, addr: addr, logs: &syncBuffer{}, exited: make(chan struct{})}
	in.cmd = exec.Command(binary, "serve", "-config", cfgPath)
	in.cmd.Env = append(os.Environ(), "SMSPROXY_E2E_KEY="+apiKey, "SMSPROXY_E2E_OTHER_KEY="+otherKey, "SMSPROXY_E2E_ADMIN_KEY="+adminKey)
	in.cmd.Stdout, in.cmd.Stderr = in.logs, in.logs
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { in.waitErr = in.cmd.Wait(); close(in.exited) }()
	t.Cleanup(func() {
		in.kill()
		if t.Failed() {
			t.Logf("smsproxy output:\n%s", in.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-in.exited:
			t.Fatalf("smsproxy exited during start-up: %v\n%s", in.waitErr, in.logs.String())
		default:
		}
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return in
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("smsproxy not ready after 30s:\n%s", in.logs.String())
	return nil
}

// startWith is start with extra lines of config.
func startWith(t *testing.T, dir, addr, receiptDelay, extra string) *instance {
	t.Helper()
	return startConfigured(t, dir, addr, writeConfig(t, dir, addr, receiptDelay, extra))
}

func (in *instance) kill() {
	select {
	case <-in.exited:
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGKILL)
	<-in.exited
}

// stop sends SIGTERM and waits for a clean exit.
func (in *instance) stop() error {
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
		return in.waitErr
	case <-time.After(20 * time.Second):
		in.kill()
		return fmt.Errorf("smsproxy did not exit 20s after SIGTERM")
	}
}

// pluginPIDs lists the proxy's child processes: its provider plugins.
func (in *instance) pluginPIDs() []int {
	pid := in.cmd.Process.Pid
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

var client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

type apiResult struct {
	Status int
	Body   map[string]any
	Header http.Header
}

func (in *instance) do(method, path, key string, body any, hdr map[string]string) (apiResult, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, "http://"+in.addr+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return apiResult{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return apiResult{Status: resp.StatusCode, Body: m, Header: resp.Header}, nil
}

// send posts one message and returns its id on 201.
func (in *instance) send(msg map[string]any, idemKey string) (string, apiResult, error) {
	hdr := map[string]string{}
	if idemKey != "" {
		hdr["Idempotency-Key"] = idemKey
	}
	r, err := in.do("POST", "/v1/messages", apiKey, msg, hdr)
	if err != nil {
		return "", r, err
	}
	id, _ := r.Body["id"].(string)
	return id, r, nil
}

// message reads one message back.
func (in *instance) message(id string) (apiResult, error) {
	return in.do("GET", "/v1/messages/"+id, apiKey, nil, nil)
}

// waitDelivered polls until every id has a final status, and returns the statuses and the number of
// "delivered" entries in each history.
func (in *instance) waitDelivered(t *testing.T, ids []string, timeout time.Duration) (map[string]string, map[string]int) {
	t.Helper()
	final := map[string]string{}
	delivered := map[string]int{}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, id := range ids {
			if _, done := final[id]; done {
				continue
			}
			r, err := in.message(id)
			if err != nil || r.Status != http.StatusOK {
				continue
			}
			st, _ := r.Body["status"].(string)
			if st == "delivered" || st == "failed" || st == "undeliverable" {
				final[id] = st
				hist, _ := r.Body["history"].([]any)
				for _, h := range hist {
					if hm, ok := h.(map[string]any); ok && hm["status"] == "delivered" {
						delivered[id]++
					}
				}
			}
		}
		if len(final) == len(ids) {
			return final, delivered
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%d of %d messages reached a final status within %s", len(final), len(ids), timeout)
	return nil, nil
}

// number returns a valid Singapore mobile number, different for each i.
func number(i int) string { return fmt.Sprintf("+659%07d", 1000000+i%8000000) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
