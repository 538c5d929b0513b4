package nsxt

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A refusal is waited out as a path pending deletion only when that is
// NSX's one reason: alone, or every related error of a failed
// hierarchical PATCH; one with another reason too is returned as it is.
func TestOnlyCode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    int64
		related []int64
		want    bool
	}{
		{"the error itself", pendingDeleteCode, nil, true},
		{"another error", 500012, nil, false},
		{"every related error", 500127, []int64{pendingDeleteCode, pendingDeleteCode}, true},
		{"one related error of two", 500127, []int64{pendingDeleteCode, 500012}, false},
		{"the wrapper only", pendingDeleteCode, []int64{500012}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &APIError{Code: tc.code, RelatedCodes: tc.related}
			require.Equal(t, tc.want, e.onlyCode(pendingDeleteCode))
			require.True(t, e.hasCode(tc.code))
		})
	}
}
