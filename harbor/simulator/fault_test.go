package simulator

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// An answer held back ends when the client gives up: the server is not
// left holding it until the delay is over.
func TestFaultDelayEndsWithTheClient(t *testing.T) {
	s, err := New(Config{})
	require.NoError(t, err)
	defer s.Close()
	s.Inject(&Fault{Path: regexp.MustCompile(`^/api/v2\.0/health$`), Delay: time.Hour, Status: 500})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v2.0/health", nil)
	require.NoError(t, err)
	_, err = http.DefaultClient.Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// The server's own close, without the simulator's, waits for every
	// request in flight: it returns because the held one has ended.
	closed := make(chan struct{})
	go func() { s.http.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the answer is still held back after the client gave up")
	}
}
