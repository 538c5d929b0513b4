package vimpoll

import "time"

// SetGiveUpAfter shortens how long Tasks reads through failures, for a
// test; it returns the function that restores it.
func SetGiveUpAfter(d time.Duration) (restore func()) {
	old := giveUpAfter
	giveUpAfter = d
	return func() { giveUpAfter = old }
}
