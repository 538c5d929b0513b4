package manifest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMaxInFlight(t *testing.T) {
	for _, tc := range []struct {
		in      string
		percent bool
		size    int
		want    int // Of(size)
	}{
		{"4", false, 10, 4},
		{"4", false, 2, 4},  // a count is not capped, as in BOSH
		{"0", false, 10, 1}, // at least one
		{"30%", true, 10, 3},
		{"30%", true, 5, 1}, // 1.5 rounds down
		{"10%", true, 5, 1}, // 0.5 rounds down to 0, then at least one
		{"100%", true, 7, 7},
		{"150%", true, 7, 7}, // at most the group
		{"50%", true, 0, 1},
		{"1073741824%", true, 1 << 40, 1 << 40},
	} {
		t.Run(tc.in, func(t *testing.T) {
			m, err := ParseMaxInFlight(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.in, m.String())
			assert.Equal(t, tc.percent, m.IsPercent())
			assert.False(t, m.IsZero())
			assert.Equal(t, tc.want, m.Of(tc.size))
		})
	}
	assert.Equal(t, MaxInFlightPercent(30), must(ParseMaxInFlight("30%")))
	assert.Equal(t, MaxInFlightCount(4), must(ParseMaxInFlight("4")))
	assert.True(t, MaxInFlight{}.IsZero())
	assert.Equal(t, "", MaxInFlight{}.String())
}

func TestCanaries(t *testing.T) {
	for _, tc := range []struct {
		in   string
		size int
		want int
	}{
		{"1", 10, 1},
		{"0", 10, 0}, // no canaries is allowed
		{"10%", 5, 0},
		{"10%", 20, 2},
		{"25%", 10, 2},
	} {
		c, err := ParseCanaries(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.in, c.String())
		assert.Equal(t, tc.want, c.Of(tc.size), tc.in)
	}
	assert.Equal(t, CanaryPercent(10), must(ParseCanaries("10%")))
	assert.Equal(t, CanaryCount(1), must(ParseCanaries("1")))
}

func TestAmountErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                      `"" is neither a count (2) nor a percentage (30%)`,
		"%":                     `"%" is neither a count (2) nor a percentage (30%)`,
		"-1":                    `"-1" is neither a count (2) nor a percentage (30%)`,
		"thirty":                `"thirty" is neither a count (2) nor a percentage (30%)`,
		"30 %":                  `"30 %" is neither a count (2) nor a percentage (30%)`,
		"1.5":                   `"1.5" is neither a count (2) nor a percentage (30%)`,
		"99999999999999999999":  `"99999999999999999999" is too large`,
		"1073741825%":           `"1073741825%" is too large`,
		"99999999999999999999%": `"99999999999999999999%" is too large`,
	} {
		_, err := ParseMaxInFlight(in)
		assert.EqualError(t, err, want, in)
		_, err = ParseCanaries(in)
		assert.EqualError(t, err, want, in)
	}
}

func TestWatchTime(t *testing.T) {
	for _, tc := range []struct {
		in, out  string
		min, max time.Duration
		isRange  bool
	}{
		{"30000", "30000", 30 * time.Second, 30 * time.Second, false},
		{"0", "0", 0, 0, false},
		{"1000-30000", "1000-30000", time.Second, 30 * time.Second, true},
		{" 1000 - 30000 ", "1000-30000", time.Second, 30 * time.Second, true}, // BOSH allows the spaces
		{"5000-5000", "5000-5000", 5 * time.Second, 5 * time.Second, true},
		{"9223372036854", "9223372036854", 9223372036854 * time.Millisecond, 9223372036854 * time.Millisecond, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			w, err := ParseWatchTime(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.out, w.String())
			assert.Equal(t, tc.min, w.Min())
			assert.Equal(t, tc.max, w.Max())
			assert.Equal(t, tc.isRange, w.IsRange())
		})
	}
	assert.Equal(t, must(ParseWatchTime("1000-30000")), WatchRange(time.Second, 30*time.Second))
	assert.Equal(t, must(ParseWatchTime("1500")), Watch(1500*time.Millisecond+999*time.Microsecond), "truncated to ms")
	assert.True(t, WatchTime{}.IsZero())

	for in, want := range map[string]string{
		"":              `"" is neither milliseconds (30000) nor a range of them (1000-30000)`,
		"1s":            `"1s" is neither milliseconds (30000) nor a range of them (1000-30000)`,
		"-5":            `"-5" is neither milliseconds (30000) nor a range of them (1000-30000)`,
		"1000-":         `"1000-" is neither milliseconds (30000) nor a range of them (1000-30000)`,
		"1-2-3":         `"1-2-3" is neither milliseconds (30000) nor a range of them (1000-30000)`,
		"3000-1000":     `"3000-1000" has a minimum greater than its maximum`,
		"9223372036855": `"9223372036855" is longer than a time.Duration holds`,
	} {
		_, err := ParseWatchTime(in)
		assert.EqualError(t, err, want, in)
	}
}

// TestUpdateForms checks every form the update block takes in YAML.
func TestUpdateForms(t *testing.T) {
	valid := string(readFile(t, "minimal.yml"))
	for _, tc := range []struct {
		update  string
		canary  string
		inFl    string
		canaryW WatchTime
		updateW WatchTime
	}{
		{"{canaries: 1, max_in_flight: 4, canary_watch_time: 30000, update_watch_time: 60000}",
			"1", "4", Watch(30 * time.Second), Watch(time.Minute)},
		{`{canaries: "10%", max_in_flight: 30%, canary_watch_time: "30000", update_watch_time: 1000-60000}`,
			"10%", "30%", Watch(30 * time.Second), WatchRange(time.Second, time.Minute)},
		{`{canaries: "2", max_in_flight: "100%", canary_watch_time: "1000 - 2000", update_watch_time: 0}`,
			"2", "100%", WatchRange(time.Second, 2*time.Second), Watch(0)},
	} {
		t.Run(tc.update, func(t *testing.T) {
			doc := strings.Replace(valid, "{canaries: 1, max_in_flight: 1, canary_watch_time: 30000, update_watch_time: 30000}", tc.update, 1)
			m, err := Parse([]byte(doc))
			require.NoError(t, err)
			assert.Equal(t, tc.canary, m.Update.Canaries.String())
			assert.Equal(t, tc.inFl, m.Update.MaxInFlight.String())
			assert.Equal(t, tc.canaryW, m.Update.CanaryWatchTime)
			assert.Equal(t, tc.updateW, m.Update.UpdateWatchTime)
		})
	}
}

func TestUpdateFor(t *testing.T) {
	m := &Manifest{Update: &Update{Canaries: CanaryCount(1), MaxInFlight: MaxInFlightPercent(30),
		CanaryWatchTime: Watch(time.Second), UpdateWatchTime: Watch(2 * time.Second), Serial: new(true),
		InitialDeployAZUpdateStrategy: "parallel"}}
	g := &InstanceGroup{Update: &Update{MaxInFlight: MaxInFlightCount(2), UpdateWatchTime: Watch(time.Minute), VMStrategy: VMStrategyCreateSwapDelete}}
	assert.Equal(t, &Update{Canaries: CanaryCount(1), MaxInFlight: MaxInFlightCount(2), CanaryWatchTime: Watch(time.Second),
		UpdateWatchTime: Watch(time.Minute), Serial: new(true), VMStrategy: VMStrategyCreateSwapDelete,
		InitialDeployAZUpdateStrategy: "parallel"}, m.UpdateFor(g))
	assert.Equal(t, m.Update, m.UpdateFor(&InstanceGroup{}))
	assert.NotSame(t, m.Update, m.UpdateFor(&InstanceGroup{}), "a copy")
	assert.Equal(t, g.Update, (&Manifest{}).UpdateFor(g))
	assert.Nil(t, (&Manifest{}).UpdateFor(&InstanceGroup{}))
}

func TestUpdateJSON(t *testing.T) {
	u := Update{Canaries: CanaryPercent(10), MaxInFlight: MaxInFlightCount(3),
		CanaryWatchTime: Watch(time.Second), UpdateWatchTime: WatchRange(time.Second, time.Minute)}
	b, err := json.Marshal(u)
	require.NoError(t, err)
	assert.JSONEq(t, `{"canaries":"10%","max_in_flight":3,"canary_watch_time":1000,"update_watch_time":"1000-60000"}`, string(b))
	var back Update
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, u, back)

	b, err = json.Marshal(Update{})
	require.NoError(t, err)
	assert.Equal(t, `{}`, string(b), "unset values are left out")
	require.Error(t, json.Unmarshal([]byte(`{"max_in_flight":"x"}`), &back))
	require.Error(t, json.Unmarshal([]byte(`{"canary_watch_time":true}`), &back))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
