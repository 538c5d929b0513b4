//go:build race

package vsphere_test

// raceDetector is set under the race detector.
const raceDetector = true
