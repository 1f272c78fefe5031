//go:build brokenrestore

package live

// A deliberately broken build for tests only (go build -tags brokenrestore): state export
// also saves the random source and import restores it (live/state.go).
func init() { restoresRandomSource = true }
