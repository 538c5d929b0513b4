// Package transporttest holds servers that misbehave the way the SDK's
// clients must survive: one that accepts connections and never answers.
package transporttest

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// SilentListener accepts TCP connections on loopback and never sends a
// byte, as a server whose front end hangs does. It returns host:port; the
// listener and the connections are closed when the test ends.
func SilentListener(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	done := make(chan struct{})
	tb.Cleanup(func() { close(done); _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { <-done; _ = c.Close() }()
		}
	}()
	return l.Addr().String()
}
