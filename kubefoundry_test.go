package kubefoundry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
)

func TestClusterID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"c1", true},
		{"prod-1", true},
		{"1", true},
		{strings.Repeat("a", 40), true},
		{strings.Repeat("a", 41), false},
		{"", false},
		{"Prod_1", false}, // passed vsphere and csi once, then failed nsxt after the VMs existed
		{"prod_1", false},
		{"prod.1", false},
		{"-prod", false},
		{"prod-", false},
		{"prod/1", false},
	} {
		t.Run(tc.id, func(t *testing.T) {
			err := kubefoundry.ClusterID(tc.id).Validate()
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, kubefoundry.ErrInvalid)
			var fe *kubefoundry.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "clusterID", fe.Field)
			assert.Equal(t, tc.id, fe.Value)
		})
	}
}

func TestValidationErrorListsEveryProblem(t *testing.T) {
	var v kubefoundry.ValidationError
	require.NoError(t, v.Err(), "no problem: a nil error, not a typed nil")
	v.Object = "spec"
	v.Add("name", "", "required")
	v.Merge("specs[2]", kubefoundry.ClusterID("Bad_ID").Validate())
	inner := &kubefoundry.ValidationError{Problems: []kubefoundry.FieldError{{Field: "[0].cpu", Value: "0", Reason: "must be at least 1"}}}
	v.Merge("vms", fmt.Errorf("wrapped: %w", inner))
	assert.False(t, v.Merge("x", errors.New("plain")), "a plain error is not a validation error")

	err := fmt.Errorf("provision: %w", v.Err())
	assert.ErrorIs(t, err, kubefoundry.ErrInvalid)
	assert.True(t, kubefoundry.IsInvalid(err))
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Problems, 3)
	assert.Equal(t, "specs[2].clusterID", ve.Problems[1].Field)
	assert.Equal(t, "vms[0].cpu", ve.Problems[2].Field)
	var fe *kubefoundry.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "name", fe.Field, "errors.As finds the first problem")
	assert.Equal(t, `provision: invalid spec: name: required; specs[2].clusterID "Bad_ID": must be 1-40 lower-case letters, digits or '-', beginning and ending with a letter or digit; vms[0].cpu "0": must be at least 1`, err.Error())
}

func TestFieldErrorLine(t *testing.T) {
	fe := &kubefoundry.FieldError{Field: "instance_groups/name=worker/instances", Value: "-1", Reason: "must not be negative", Line: 12}
	assert.Equal(t, `instance_groups/name=worker/instances (line 12) "-1": must not be negative`, fe.Error())
	var v kubefoundry.ValidationError
	v.Merge("", fe)
	assert.Equal(t, 12, v.Problems[0].Line, "Merge keeps the line")
}

func TestTimeoutError(t *testing.T) {
	cause := errors.New("i/o timeout")
	err := fmt.Errorf("connect: %w", &kubefoundry.TimeoutError{Host: "vc:443", Stage: kubefoundry.StageTLS, After: 10 * time.Second, Err: cause})
	assert.True(t, kubefoundry.IsTimeout(err))
	assert.ErrorIs(t, err, cause, "the cause stays in the chain")
	assert.Contains(t, err.Error(), "TLS handshake to vc:443: no answer within 10s")
	call := &kubefoundry.TimeoutError{Host: "vc:443", Stage: kubefoundry.StageCall, Op: "RetrieveServiceContent", After: time.Minute, Err: cause}
	assert.Contains(t, call.Error(), "call RetrieveServiceContent to vc:443: no answer within 1m0s")
}

func TestEventJSON(t *testing.T) {
	var got []kubefoundry.Event
	sink := kubefoundry.SinkFunc(func(e kubefoundry.Event) { got = append(got, e) })
	kubefoundry.Emit(sink, kubefoundry.Event{Op: "provision", Object: "w-0", Phase: "failed", Step: 1, Steps: 3, Handle: "task-7", Err: errors.New("no space")})
	kubefoundry.Emit(nil, kubefoundry.Event{Op: "dropped"})
	require.Len(t, got, 1)
	assert.False(t, got[0].Time.IsZero(), "Emit stamps the time")
	b, err := json.Marshal(got[0])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, "no space", m["error"])
	assert.Equal(t, "task-7", m["handle"])
	assert.Equal(t, float64(3), m["steps"])

	var back kubefoundry.Event
	require.NoError(t, json.Unmarshal(b, &back))
	require.EqualError(t, back.Err, "no space", "the error comes back as one with its message")
	assert.True(t, back.Time.Equal(got[0].Time))
	want := got[0]
	back.Err, back.Time, want.Err, want.Time = nil, time.Time{}, nil, time.Time{}
	assert.Equal(t, want, back)
	require.NoError(t, json.Unmarshal([]byte(`{"op":"x","phase":"done"}`), &back))
	assert.NoError(t, back.Err, "no error, no Err")
}
