package protocol

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Entropy purposes: a scripted source hands out bytes per purpose, in order.
const (
	PurposeEphemeralKey = "ephemeral_key"
	PurposeRatchetKey   = "ratchet_key"
	PurposeNonce        = "nonce"
)

// Entropy is the injected source of every random byte the protocol draws.
type Entropy interface {
	RandomBytes(n int, purpose string) ([]byte, error)
}

// SystemEntropy draws from the operating system's CSPRNG.
type SystemEntropy struct{}

// RandomBytes implements Entropy.
func (SystemEntropy) RandomBytes(n int, _ string) ([]byte, error) {
	b := make([]byte, n)
	_, err := rand.Read(b)
	return b, err
}

// ScriptedEntropy replays pinned values per purpose (vectors): draw i of a purpose returns
// the i-th queued value, whose length must match.
type ScriptedEntropy struct {
	queues map[string][][]byte
}

// NewScriptedEntropy builds an empty scripted source.
func NewScriptedEntropy() *ScriptedEntropy {
	return &ScriptedEntropy{queues: map[string][][]byte{}}
}

// Push queues values for a purpose.
func (s *ScriptedEntropy) Push(purpose string, values ...[]byte) {
	for _, v := range values {
		s.queues[purpose] = append(s.queues[purpose], clone(v))
	}
}

// Remaining reports how many values of a purpose are still queued.
func (s *ScriptedEntropy) Remaining(purpose string) int { return len(s.queues[purpose]) }

// Clone copies the queues, so a caller can roll back the draws of a failed operation.
func (s *ScriptedEntropy) Clone() *ScriptedEntropy {
	c := NewScriptedEntropy()
	for k, q := range s.queues {
		c.queues[k] = append([][]byte(nil), q...)
	}
	return c
}

// RandomBytes implements Entropy.
func (s *ScriptedEntropy) RandomBytes(n int, purpose string) ([]byte, error) {
	q := s.queues[purpose]
	if len(q) == 0 {
		return nil, &Error{Name: ErrExhausted, Field: purpose, Detail: "scripted entropy exhausted"}
	}
	v := q[0]
	if len(v) != n {
		return nil, &Error{Name: ErrExhausted, Field: purpose, Detail: fmt.Sprintf("scripted value has %d bytes, want %d", len(v), n)}
	}
	s.queues[purpose] = q[1:]
	return v, nil
}

// SeededEntropy derives every draw from a seed (reproducible live devices): draw i returns
// HMAC-SHA256(SHA-256("SemaFore-Go-seeded-v1" || seed), u64(i) || u64(block) || purpose)
// blocks. Deterministic in the order of draws; not a source for production keys.
type SeededEntropy struct {
	key   []byte
	draws uint64
}

// NewSeededEntropy keys a seeded source.
func NewSeededEntropy(seed string) *SeededEntropy {
	k := sha256.Sum256([]byte("SemaFore-Go-seeded-v1" + seed))
	return &SeededEntropy{key: k[:]}
}

// RandomBytes implements Entropy.
func (s *SeededEntropy) RandomBytes(n int, purpose string) ([]byte, error) {
	s.draws++
	out := make([]byte, 0, n+sha256.Size)
	for block := uint64(0); len(out) < n; block++ {
		msg := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, s.draws), block)
		out = append(out, HMAC(s.key, append(msg, purpose...))...)
	}
	return out[:n], nil
}
