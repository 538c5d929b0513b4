package director

import (
	"sync"
	"time"
)

// Event is one line of a task's event log, in the shape of BOSH's
// (bosh-director's EventLog, what `bosh task --event` prints): a stage of
// Total steps; each step started, then finished or failed with its error.
type Event struct {
	Time     int64       `json:"time"` // Unix seconds
	Stage    string      `json:"stage"`
	Tags     []string    `json:"tags"`
	Total    int         `json:"total"`
	Task     string      `json:"task"`  // the step: "web/3f1c (0) (canary)"
	Index    int         `json:"index"` // 1-based
	State    string      `json:"state"` // started, finished, failed
	Progress int         `json:"progress"`
	Data     *EventError `json:"data,omitempty"`
}

// EventError is a failed step's error.
type EventError struct {
	Error string `json:"error"`
}

// The states of an event.
const (
	EventStarted  = "started"
	EventFinished = "finished"
	EventFailed   = "failed"
)

// EventSink receives a task's events, in order, from any goroutine; it
// must not block for long.
type EventSink func(Event)

// stage emits the events of one stage.
type stage struct {
	mu    sync.Mutex
	sink  EventSink
	name  string
	tags  []string
	total int
	next  int
	now   func() time.Time
}

func newStage(sink EventSink, name string, tags []string, total int) *stage {
	return &stage{sink: sink, name: name, tags: tags, total: total, now: time.Now}
}

// start emits task's started event and returns its index and the function
// that ends it (finished, or failed with err).
func (s *stage) start(task string) func(err error) {
	s.mu.Lock()
	s.next++
	index := s.next
	s.emitLocked(task, index, EventStarted, 0, nil)
	s.mu.Unlock()
	return func(err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.emitLocked(task, index, EventFailed, 100, &EventError{Error: err.Error()})
			return
		}
		s.emitLocked(task, index, EventFinished, 100, nil)
	}
}

func (s *stage) emitLocked(task string, index int, state string, progress int, data *EventError) {
	if s.sink == nil {
		return
	}
	s.sink(Event{Time: s.now().Unix(), Stage: s.name, Tags: s.tags, Total: s.total, Task: task, Index: index,
		State: state, Progress: progress, Data: data})
}
