// Package protocol is an independent Go implementation of the SemaFore wire protocol v1,
// written from SPEC.md alone: SPK signatures (§1), X3DH and the SMX1 envelope (§2), the
// DR_V1 frame and Double Ratchet (§3), canonical errors (§5) and the session digest (§7).
// It is pure: no I/O, no clock, and every random draw comes from an injected Entropy.
package protocol

import "fmt"

// Canonical error names (SPEC §5). Adapters and vectors speak these names.
const (
	ErrMalformedEnvelope  = "MalformedEnvelope"
	ErrUnsupportedVersion = "UnsupportedVersion"
	ErrInvalidSignature   = "InvalidSignature"
	ErrInvalidKey         = "InvalidKey"
	ErrDecryptionFailed   = "DecryptionFailed"
	ErrDuplicateMessage   = "DuplicateMessage"
	ErrTooManySkipped     = "TooManySkipped"
	ErrUnknownPrekey      = "UnknownPrekey"
	ErrUntrustedIdentity  = "UntrustedIdentity"
	ErrNoSession          = "NoSession"
	ErrUnsupported        = "Unsupported"
)

// ErrExhausted is not a SPEC §5 name: a scripted entropy source ran out or was given a value
// of the wrong size. Adapters map it to MalformedEnvelope on the request argument.
const ErrExhausted = "EntropyExhausted"

// Error is the one error type of the package: Name is the SPEC §5 name, Field the field or
// condition that failed, so a gate report can say *why* without a stack trace.
type Error struct {
	Name   string
	Field  string
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s(%s)", e.Name, e.Field)
	}
	return fmt.Sprintf("%s(%s): %s", e.Name, e.Field, e.Detail)
}

func newErr(name, field, format string, a ...any) *Error {
	return &Error{Name: name, Field: field, Detail: fmt.Sprintf(format, a...)}
}

// Malformed builds a MalformedEnvelope error naming the field.
func Malformed(field, format string, a ...any) *Error {
	return newErr(ErrMalformedEnvelope, field, format, a...)
}
