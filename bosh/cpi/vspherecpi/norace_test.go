//go:build !race

package vspherecpi_test

// raceDetector is set under the race detector.
const raceDetector = false
