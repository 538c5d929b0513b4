// Package health is BOSH's health monitor with its resurrector: it
// follows the heartbeats and alerts agents publish on the message bus
// (package bosh/mbus), times out an instance whose agent goes silent, and
// has it recreated, unless too much of its deployment is down at once.
//
//	m, err := health.Start(ctx, busClient, health.Config{Interval: 30 * time.Second,
//		Resurrect: recreate, Alerts: notify}, log)
//	defer m.Close()
//	m.Watch(health.Instance{Deployment: "cf", Group: "router", ID: id, Index: 0, AgentID: agentID})
//
// # Time-outs
//
// Each watched instance has a timer, reset by every heartbeat of its
// agent: silent for Config.Timeout (one and a half heartbeat intervals by
// default, so a silent agent is found within two intervals of its last
// heartbeat; BOSH's own agent_timeout is 60s for 30s heartbeats) it times
// out, with a critical "timeout" alert, once until it is heard from
// again. A heartbeat whose job_state turns failing is a "job_state" alert;
// an alert the agent sends is passed on as "agent".
//
// # Resurrection and meltdown
//
// A timed-out instance is given to Config.Resurrect (the director's
// recreate), once per time-out; it returns the instance as it is now,
// which is watched in its place ("resurrected", or "resurrection_failed"
// with the error). BOSH's meltdown guard holds: when at least
// MeltdownGuard.Count of a deployment's instances timed out within
// MeltdownGuard.Window (each instance counted once) and at least
// MeltdownGuard.Percent of its watched instances (BOSH's minimum_down_jobs 5, percent_threshold 20%,
// time_threshold 600s by default), resurrection of that deployment
// pauses with one "meltdown" alert, until a time-out finds it below
// the guard again.
//
// Alerts are queued for Config.Alerts without ever blocking the bus: a
// sink 1024 alerts behind loses the next ones (Dropped counts them). A
// resurrection that ends after Forget does not bring the instance back
// into the watch. Not here yet: retrying a failed resurrection (BOSH
// retries on its next scan); cloud-check is package bosh/director's.
//
// # Files
//
//	monitor.go  Monitor, Start, Watch, Forget, Status; time-outs, alerts, the resurrector and its meltdown guard
package health
