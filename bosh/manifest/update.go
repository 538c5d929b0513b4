package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Update is an update block: how many instances are updated at once and
// how long the director waits for them. At the top of a manifest the four
// first keys are required; in an instance group every key is optional and
// falls back to the deployment's (Manifest.UpdateFor).
type Update struct {
	// Canaries are updated first; a failed canary stops the deploy.
	Canaries Canaries `json:"canaries,omitzero" yaml:"canaries,omitempty"`
	// MaxInFlight is how many non-canary instances are updated at once
	// within an AZ.
	MaxInFlight MaxInFlight `json:"max_in_flight,omitzero" yaml:"max_in_flight,omitempty"`
	// CanaryWatchTime and UpdateWatchTime bound the wait for an updated
	// instance to be healthy.
	CanaryWatchTime WatchTime `json:"canary_watch_time,omitzero" yaml:"canary_watch_time,omitempty"`
	UpdateWatchTime WatchTime `json:"update_watch_time,omitzero" yaml:"update_watch_time,omitempty"`
	// Serial false updates instance groups in parallel; nil means true.
	Serial *bool `json:"serial,omitempty" yaml:"serial,omitempty"`
	// VMStrategy is how a VM that must be recreated is replaced; empty
	// means VMStrategyDeleteCreate.
	VMStrategy VMStrategy `json:"vm_strategy,omitempty" yaml:"vm_strategy,omitempty"`
	// InitialDeployAZUpdateStrategy is "serial" (the default) or
	// "parallel": how AZs are deployed the first time.
	InitialDeployAZUpdateStrategy string `json:"initial_deploy_az_update_strategy,omitempty" yaml:"initial_deploy_az_update_strategy,omitempty"`
}

// VMStrategy is how the director replaces a VM it must recreate.
type VMStrategy string

// The VM strategies BOSH knows.
const (
	// VMStrategyDeleteCreate stops the processes and deletes the old VM
	// before creating the new one.
	VMStrategyDeleteCreate VMStrategy = "delete-create"
	// VMStrategyCreateSwapDelete creates and provisions the new VM first,
	// then swaps; BOSH falls back to delete-create where it cannot (static
	// IPs).
	VMStrategyCreateSwapDelete VMStrategy = "create-swap-delete"
)

// maxPercent and maxCount bound the numbers Canaries and MaxInFlight
// accept, so that every calculation stays within int.
const (
	maxCount   = 1 << 30
	maxPercent = 1 << 30
)

// amount is a count or a percentage, as update.canaries and
// update.max_in_flight are written. The zero amount is unset.
type amount struct {
	n       int
	percent bool
	set     bool
}

func parseAmount(s string) (amount, error) {
	t := strings.TrimSuffix(s, "%")
	percent := t != s
	if t == "" || strings.TrimLeft(t, "0123456789") != "" {
		return amount{}, errors.New("is neither a count (2) nor a percentage (30%)")
	}
	n, err := strconv.Atoi(t)
	if err != nil || (percent && n > maxPercent) || (!percent && n > maxCount) {
		return amount{}, errors.New("is too large")
	}
	return amount{n: n, percent: percent, set: true}, nil
}

// String returns the amount as written in a manifest: "2" or "30%"; ""
// when unset.
func (a amount) String() string {
	switch {
	case !a.set:
		return ""
	case a.percent:
		return strconv.Itoa(a.n) + "%"
	}
	return strconv.Itoa(a.n)
}

// IsZero reports whether the amount is unset.
func (a amount) IsZero() bool { return !a.set }

// IsPercent reports whether the amount is a percentage of the instance
// group.
func (a amount) IsPercent() bool { return a.percent }

// of is BOSH's calculation: a count as is; a percentage of size rounded
// down and at most size.
func (a amount) of(size int) int {
	if !a.percent {
		return a.n
	}
	if size <= 0 {
		return 0
	}
	// size*n/100 in 128 bits: no overflow for any size.
	hi, lo := bits.Mul64(uint64(size), uint64(max(a.n, 0)))
	if hi >= 100 {
		return size
	}
	q, _ := bits.Div64(hi, lo, 100)
	if q > uint64(size) {
		return size
	}
	return int(q)
}

func (a amount) node() *yaml.Node {
	if a.percent {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: a.String()}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: a.String()}
}

func (a amount) json() []byte {
	if a.percent {
		return []byte(strconv.Quote(a.String()))
	}
	return []byte(a.String())
}

func (a *amount) unjson(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		*a = amount{}
		return nil
	case string:
		p, err := parseAmount(v)
		*a = p
		return quoted(v, err)
	case float64:
		s := strconv.FormatFloat(v, 'f', -1, 64)
		p, err := parseAmount(s)
		*a = p
		return quoted(s, err)
	}
	return fmt.Errorf("%s is neither a count nor a percentage", b)
}

// Canaries is update.canaries: how many instances are updated first, as a
// count ("1") or a percentage of the instance group ("10%").
type Canaries struct{ amount }

// CanaryCount returns n canaries.
func CanaryCount(n int) Canaries { return Canaries{amount{n: n, set: true}} }

// CanaryPercent returns p percent of the instance group as canaries.
func CanaryPercent(p int) Canaries { return Canaries{amount{n: p, percent: true, set: true}} }

// ParseCanaries reads "2" or "30%".
func ParseCanaries(s string) (Canaries, error) {
	a, err := parseAmount(s)
	return Canaries{a}, quoted(s, err)
}

// Of returns the number of canaries for an instance group of size
// instances, as BOSH computes it (a percentage rounds down).
func (c Canaries) Of(size int) int { return c.of(size) }

// MarshalYAML writes a count as an integer and a percentage as a string.
func (c Canaries) MarshalYAML() (any, error) { return c.node(), nil }

// MarshalJSON writes a count as a number and a percentage as a string.
func (c Canaries) MarshalJSON() ([]byte, error) { return c.json(), nil }

// UnmarshalJSON reads a number or a "30%" string.
func (c *Canaries) UnmarshalJSON(b []byte) error { return c.unjson(b) }

// MaxInFlight is update.max_in_flight: how many non-canary instances are
// updated at once, as a count ("4") or a percentage ("30%").
type MaxInFlight struct{ amount }

// MaxInFlightCount returns n instances at once.
func MaxInFlightCount(n int) MaxInFlight { return MaxInFlight{amount{n: n, set: true}} }

// MaxInFlightPercent returns p percent of the instance group at once.
func MaxInFlightPercent(p int) MaxInFlight {
	return MaxInFlight{amount{n: p, percent: true, set: true}}
}

// ParseMaxInFlight reads "4" or "30%".
func ParseMaxInFlight(s string) (MaxInFlight, error) {
	a, err := parseAmount(s)
	return MaxInFlight{a}, quoted(s, err)
}

// quoted puts the value in front of a parse error: "thirty" is neither….
func quoted(s string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%q %w", s, err)
}

// Of returns how many instances of a group of size are updated at once,
// as BOSH computes it: a percentage rounds down, and the result is at
// least 1.
func (m MaxInFlight) Of(size int) int { return max(m.of(size), 1) }

// MarshalYAML writes a count as an integer and a percentage as a string.
func (m MaxInFlight) MarshalYAML() (any, error) { return m.node(), nil }

// MarshalJSON writes a count as a number and a percentage as a string.
func (m MaxInFlight) MarshalJSON() ([]byte, error) { return m.json(), nil }

// UnmarshalJSON reads a number or a "30%" string.
func (m *MaxInFlight) UnmarshalJSON(b []byte) error { return m.unjson(b) }

// maxWatchMillis keeps a watch time within time.Duration.
const maxWatchMillis = math.MaxInt64 / int64(time.Millisecond)

// WatchTime is update.canary_watch_time or update.update_watch_time:
// milliseconds as an integer ("30000": wait that long, then check) or a
// range ("1000-30000": wait at least the first, then until healthy or the
// second). The zero WatchTime is unset.
type WatchTime struct {
	min, max int64 // milliseconds
	isRange  bool
	set      bool
}

// Watch returns a single watch time, truncated to milliseconds.
func Watch(d time.Duration) WatchTime {
	ms := max(d.Milliseconds(), 0)
	return WatchTime{min: ms, max: ms, set: true}
}

// WatchRange returns a min-max watch time, truncated to milliseconds.
// Validate reports a min greater than max.
func WatchRange(minimum, maximum time.Duration) WatchTime {
	return WatchTime{min: max(minimum.Milliseconds(), 0), max: max(maximum.Milliseconds(), 0), isRange: true, set: true}
}

// ParseWatchTime reads "30000" or "1000-30000" (milliseconds; spaces
// around the numbers and the dash are allowed, as BOSH allows them).
func ParseWatchTime(s string) (WatchTime, error) {
	w, err := parseWatchTime(s)
	return w, quoted(s, err)
}

func parseWatchTime(s string) (WatchTime, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	minimum, err := parseMillis(lo)
	if err != nil {
		return WatchTime{}, err
	}
	maximum := minimum
	if isRange {
		if maximum, err = parseMillis(hi); err != nil {
			return WatchTime{}, err
		}
		if minimum > maximum {
			return WatchTime{}, errors.New("has a minimum greater than its maximum")
		}
	}
	return WatchTime{min: minimum, max: maximum, isRange: isRange, set: true}, nil
}

func parseMillis(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("is neither milliseconds (30000) nor a range of them (1000-30000)")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxWatchMillis {
		return 0, errors.New("is longer than a time.Duration holds")
	}
	return n, nil
}

// Min is how long the director waits before it first checks health.
func (w WatchTime) Min() time.Duration { return time.Duration(w.min) * time.Millisecond }

// Max is how long the director waits at most for the instance to be
// healthy.
func (w WatchTime) Max() time.Duration { return time.Duration(w.max) * time.Millisecond }

// IsRange reports whether the watch time was written as min-max.
func (w WatchTime) IsRange() bool { return w.isRange }

// IsZero reports whether the watch time is unset.
func (w WatchTime) IsZero() bool { return !w.set }

// String returns the watch time as written in a manifest: "30000" or
// "1000-30000"; "" when unset.
func (w WatchTime) String() string {
	switch {
	case !w.set:
		return ""
	case w.isRange:
		return strconv.FormatInt(w.min, 10) + "-" + strconv.FormatInt(w.max, 10)
	}
	return strconv.FormatInt(w.min, 10)
}

// MarshalYAML writes a single time as an integer and a range as a string.
func (w WatchTime) MarshalYAML() (any, error) {
	if w.isRange {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: w.String()}, nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: w.String()}, nil
}

// MarshalJSON writes a single time as a number and a range as a string.
func (w WatchTime) MarshalJSON() ([]byte, error) {
	if w.isRange {
		return []byte(strconv.Quote(w.String())), nil
	}
	return []byte(w.String()), nil
}

// UnmarshalJSON reads a number of milliseconds or a "min-max" string.
func (w *WatchTime) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	var err error
	switch v := v.(type) {
	case nil:
		*w = WatchTime{}
	case string:
		*w, err = ParseWatchTime(v)
	case float64:
		*w, err = ParseWatchTime(strconv.FormatFloat(v, 'f', -1, 64))
	default:
		err = fmt.Errorf("%s is not a watch time", b)
	}
	return err
}
