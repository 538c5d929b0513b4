package mbus

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kubefoundry/kubefoundry"
)

// ProtocolVersion is the agent protocol version the director sends in every
// request ("protocol": 3), as BOSH's director does.
const ProtocolVersion = 3

// MaxResponseLength is the largest answer an agent publishes, in bytes of
// JSON, as BOSH's agent bounds it (1 MiB). An answer that does not fit (in
// this or in the bus's max payload, whichever is smaller) is replaced by an
// exception with ResponseTooLargeMessage.
const MaxResponseLength = 1024 * 1024

// ResponseTooLargeMessage is the exception message an agent answers with
// when its answer exceeds the largest payload it may send; it is the real
// agent's text.
const ResponseTooLargeMessage = "Response exceeded maximum allowed length"

// Task states as the agent reports them in a TaskValue.
const (
	TaskRunning = "running"
	TaskDone    = "done"
	TaskFailed  = "failed"
)

// Request is what the director publishes to agent.<agent-id>.
type Request struct {
	Protocol  int             `json:"protocol"`
	Method    string          `json:"method"`
	Arguments json.RawMessage `json:"arguments"` // a JSON array
	ReplyTo   string          `json:"reply_to"`  // director.<director-uuid>.<agent-id>.<request-id>
}

// Response is what the agent publishes to the request's reply_to: either a
// value or an exception.
type Response struct {
	Value     json.RawMessage `json:"value,omitempty"`
	Exception *Exception      `json:"exception,omitempty"`
}

// Exception is an agent's error answer.
type Exception struct {
	Message string `json:"message"`
}

// TaskValue is the value of an answer to a long-running method while it
// runs: the director polls get_task with AgentTaskID until the value is no
// longer a running task.
type TaskValue struct {
	AgentTaskID string `json:"agent_task_id"`
	State       string `json:"state"`
}

// runningTask reports whether raw is a TaskValue in state running, the only
// shape that makes the director poll.
func runningTask(raw json.RawMessage) (TaskValue, bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return TaskValue{}, false
	}
	var tv TaskValue
	if err := json.Unmarshal(raw, &tv); err != nil {
		return TaskValue{}, false
	}
	return tv, tv.State == TaskRunning && tv.AgentTaskID != ""
}

// Heartbeat is what an agent publishes to hm.agent.heartbeat.<agent-id>, in
// the real agent's shape. Job and Index are null on a VM that has no job
// yet; the vitals are strings, as the agent sends them.
type Heartbeat struct {
	Deployment        string  `json:"deployment"`
	Job               *string `json:"job"`
	Index             *int    `json:"index"`
	JobState          string  `json:"job_state"`
	Vitals            Vitals  `json:"vitals"`
	NodeID            string  `json:"node_id"`
	NumberOfProcesses int     `json:"number_of_processes"`
}

// Vitals are a VM's vital signs in a heartbeat.
type Vitals struct {
	CPU    CPUVitals    `json:"cpu"`
	Disk   DiskVitals   `json:"disk,omitempty"`
	Load   []string     `json:"load,omitempty"` // 1, 5 and 15 minute load averages
	Mem    MemVitals    `json:"mem"`
	Swap   MemVitals    `json:"swap"`
	Uptime UptimeVitals `json:"uptime"`
}

// CPUVitals are CPU percentages, as strings ("0.4").
type CPUVitals struct {
	Sys  string `json:"sys,omitempty"`
	User string `json:"user,omitempty"`
	Wait string `json:"wait,omitempty"`
}

// MemVitals are memory or swap use: kilobytes and percent, as strings.
type MemVitals struct {
	KB      string `json:"kb,omitempty"`
	Percent string `json:"percent,omitempty"`
}

// DiskVitals maps a disk ("system", "ephemeral", "persistent") to its use.
type DiskVitals map[string]DiskUse

// DiskUse is one disk's use in percent of blocks and of inodes, as strings.
type DiskUse struct {
	Percent      string `json:"percent,omitempty"`
	InodePercent string `json:"inode_percent,omitempty"`
}

// UptimeVitals is how long the VM has run.
type UptimeVitals struct {
	Secs uint64 `json:"secs,omitempty"`
}

// Alert is what an agent publishes to hm.agent.alert.<agent-id>: a monit
// event or an SSH login. Severity is BOSH's level (1 alert, 2 critical, 3
// error, 4 warning, -1 ignored); CreatedAt is Unix seconds.
type Alert struct {
	ID        string `json:"id"`
	Severity  int    `json:"severity"`
	Title     string `json:"title"`
	Summary   string `json:"summary"`
	CreatedAt int64  `json:"created_at"`
}

// Topics an agent publishes under hm.agent.<topic>.<agent-id>.
const (
	TopicHeartbeat = "heartbeat"
	TopicAlert     = "alert"
	TopicShutdown  = "shutdown"
)

// AgentSubject is the subject an agent listens on: agent.<agent-id>.
func AgentSubject(agentID string) string { return "agent." + agentID }

// HMSubject is the subject an agent publishes a topic to for the health
// monitor: hm.agent.<topic>.<agent-id>.
func HMSubject(topic, agentID string) string { return "hm.agent." + topic + "." + agentID }

// ReplySubject is where the agent answers a request:
// director.<director-id>.<agent-id>.<request-id>, as BOSH's director forms
// it, so that an agent may be allowed to publish only to answers for itself.
func ReplySubject(directorID, agentID, requestID string) string {
	return "director." + directorID + "." + agentID + "." + requestID
}

// AgentIDFromSubject returns the agent id that ends an hm.agent.<topic>.<id>
// subject, and false for any other subject.
func AgentIDFromSubject(subject string) (string, bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != "hm" || parts[1] != "agent" || parts[3] == "" {
		return "", false
	}
	return parts[3], true
}

// ValidateAgentID checks that id can be one NATS subject token and one DNS
// label of a certificate name: 1 to 63 letters, digits and hyphens (a
// UUID, as BOSH's agent ids are). Wildcards and dots would let an id reach
// other agents' subjects, so they are refused.
func ValidateAgentID(id string) error {
	if id == "" || len(id) > 63 {
		return &kubefoundry.FieldError{Field: "agentID", Value: id, Reason: "must be 1 to 63 characters"}
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return &kubefoundry.FieldError{Field: "agentID", Value: id,
				Reason: fmt.Sprintf("character %q is not a letter, digit or hyphen", r)}
		}
	}
	return nil
}
