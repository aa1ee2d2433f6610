// Package load is the engine behind cmd/smsbench: it drives the smsproxy HTTP API (or any endpoint
// speaking the same JSON) at a fixed open-loop rate or flat out, generates valid and varied requests,
// records latencies in a log-linear histogram and summarises a run.
//
// Latency in fixed-rate mode is measured from the moment a request was scheduled to be sent, not from
// the moment it was actually sent, so a server stall shows up in the percentiles instead of silently
// slowing the client down (coordinated omission).
package load
