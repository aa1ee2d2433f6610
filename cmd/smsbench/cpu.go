package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on every Linux port Go
// supports).
const clockTick = 10 * time.Millisecond

// procCPU is the CPU time (user + system) a process has used so far, read from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("no_process: cannot read the CPU time of process %d (Linux /proc only): %w", pid, err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU returns utime + stime of a /proc/PID/stat line. The command name (field 2) is in
// parentheses and may hold spaces, so the fields are counted from its closing parenthesis.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad_stat: no command name in %q", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state); utime is field 14, stime field 15
	if len(f) < 13 {
		return 0, fmt.Errorf("bad_stat: %d fields after the command name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad_stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// parsePIDs parses -pids: process ids separated by commas.
func parsePIDs(s string) ([]int, error) {
	var pids []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("invalid_pids: %q is not a process id", f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// cpuMeter measures the CPU time the processes of -pids spend during a run.
type cpuMeter struct {
	pids  []int
	start []time.Duration
}

// startCPU reads the processes' CPU times before a run.
func startCPU(pids []int) (*cpuMeter, error) {
	m := &cpuMeter{pids: pids}
	for _, pid := range pids {
		t, err := procCPU(pid)
		if err != nil {
			return nil, err
		}
		m.start = append(m.start, t)
	}
	return m, nil
}

// report writes each process's CPU time since startCPU and its share per message sent (warm-up
// included: the processes worked for those too).
func (m *cpuMeter) report(w io.Writer, messages int64) error {
	for i, pid := range m.pids {
		t, err := procCPU(pid)
		if err != nil {
			return err
		}
		used := t - m.start[i]
		per := "-"
		if messages > 0 {
			per = fmt.Sprintf("%.0f µs/msg", float64(used.Microseconds())/float64(messages))
		}
		fmt.Fprintf(w, "  cpu         pid %d: %.2f s, %s over %d messages (±%v a process)\n", pid, used.Seconds(), per, messages, clockTick)
	}
	return nil
}
