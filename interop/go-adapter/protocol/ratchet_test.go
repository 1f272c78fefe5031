package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// seeded is a deterministic Entropy for tests: SHA-256(label || purpose || counter).
type seeded struct {
	label string
	n     int
}

func (s *seeded) RandomBytes(n int, purpose string) ([]byte, error) {
	s.n++
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%d", s.label, purpose, s.n)))
	return sum[:n], nil
}

type pair struct {
	alice, bob       *Ratchet
	aliceRNG, bobRNG *seeded
}

func newPair(t *testing.T) *pair {
	t.Helper()
	spk, err := X25519KeyPair(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	rk0 := RootKey0(bytes.Repeat([]byte{1}, 32))
	ad := []byte("ad for tests")
	p := &pair{aliceRNG: &seeded{label: "alice"}, bobRNG: &seeded{label: "bob"}}
	if p.alice, err = InitAlice(rk0, ad, spk.Public, p.aliceRNG); err != nil {
		t.Fatal(err)
	}
	p.bob = InitBob(rk0, ad, spk)
	return p
}

func mustEncrypt(t *testing.T, r *Ratchet, rng Entropy, msg string) []byte {
	t.Helper()
	f, err := r.Encrypt([]byte(msg), rng)
	if err != nil {
		t.Fatalf("encrypt %q: %v", msg, err)
	}
	return f
}

func mustDecrypt(t *testing.T, r *Ratchet, frame []byte, want string) {
	t.Helper()
	pt, err := r.Decrypt(frame)
	if err != nil {
		t.Fatalf("decrypt (want %q): %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("decrypt: got %q, want %q", pt, want)
	}
}

func wantErr(t *testing.T, err error, name string) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) || pe.Name != name {
		t.Fatalf("got %v, want %s", err, name)
	}
}

func TestAnyDeliveryOrderDecryptsEveryMessageExactlyOnce(t *testing.T) {
	for seed := uint64(0); seed < 30; seed++ {
		rnd := rand.New(rand.NewPCG(seed, 99))
		p := newPair(t)
		// Two chains from Alice (a reply from Bob in between forces a DH step).
		var frames [][]byte
		var want []string
		for i := 0; i < 20; i++ {
			msg := fmt.Sprintf("a%d", i)
			frames, want = append(frames, mustEncrypt(t, p.alice, p.aliceRNG, msg)), append(want, msg)
		}
		mustDecrypt(t, p.bob, frames[0], want[0])
		mustDecrypt(t, p.alice, mustEncrypt(t, p.bob, p.bobRNG, "b0"), "b0")
		for i := 20; i < 40; i++ {
			msg := fmt.Sprintf("a%d", i)
			frames, want = append(frames, mustEncrypt(t, p.alice, p.aliceRNG, msg)), append(want, msg)
		}
		order := rnd.Perm(len(frames) - 1)
		for _, k := range order {
			mustDecrypt(t, p.bob, frames[k+1], want[k+1])
		}
		for _, k := range append(order, -1) {
			_, err := p.bob.Decrypt(frames[k+1])
			wantErr(t, err, ErrDuplicateMessage)
		}
		if p.bob.SkippedCount() != 0 {
			t.Fatalf("seed %d: %d skipped keys left after every message arrived", seed, p.bob.SkippedCount())
		}
	}
}

func TestDecryptIsTransactional(t *testing.T) {
	p := newPair(t)
	f0 := mustEncrypt(t, p.alice, p.aliceRNG, "zero")
	f1 := mustEncrypt(t, p.alice, p.aliceRNG, "one")
	mustDecrypt(t, p.bob, f1, "one")
	before := p.bob.Clone()
	for i := range f0 {
		for _, mutate := range []func([]byte) []byte{
			func(b []byte) []byte { b[i] ^= 0x01; return b },
			func(b []byte) []byte { return b[:i] },
		} {
			_, err := p.bob.Decrypt(mutate(clone(f0)))
			if err == nil {
				t.Fatalf("mutation at %d accepted", i)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("non-canonical error %v", err)
			}
			if !reflect.DeepEqual(before, p.bob) {
				t.Fatalf("state changed by a rejected frame (byte %d, %v)", i, err)
			}
		}
	}
	mustDecrypt(t, p.bob, f0, "zero")
}

func TestMaxSkipBoundary(t *testing.T) {
	p := newPair(t)
	var frames [][]byte
	for i := 0; i <= MaxSkip+1; i++ {
		frames = append(frames, mustEncrypt(t, p.alice, p.aliceRNG, fmt.Sprint(i)))
	}
	before := p.bob.Clone()
	_, err := p.bob.Decrypt(frames[MaxSkip+1]) // would skip 1001 keys
	wantErr(t, err, ErrTooManySkipped)
	if !reflect.DeepEqual(before, p.bob) {
		t.Fatal("TooManySkipped changed the state")
	}
	mustDecrypt(t, p.bob, frames[MaxSkip], fmt.Sprint(MaxSkip)) // skips exactly 1000
	if p.bob.SkippedCount() != MaxSkip {
		t.Fatalf("%d skipped keys stored, want %d", p.bob.SkippedCount(), MaxSkip)
	}
	mustDecrypt(t, p.bob, frames[MaxSkip+1], fmt.Sprint(MaxSkip+1))
	mustDecrypt(t, p.bob, frames[0], "0")
}

func TestSkippedKeysAreCappedOldestFirst(t *testing.T) {
	p := newPair(t)
	// Three chains of Alice, each skipping 900 keys at Bob: 2700 skipped > 2000.
	var lost, kept []byte
	for chain := 0; chain < 3; chain++ {
		var frames [][]byte
		for i := 0; i <= 900; i++ {
			frames = append(frames, mustEncrypt(t, p.alice, p.aliceRNG, fmt.Sprintf("%d/%d", chain, i)))
		}
		mustDecrypt(t, p.bob, frames[900], fmt.Sprintf("%d/900", chain))
		if chain == 0 {
			lost = frames[0]
		}
		if chain == 2 {
			kept = frames[0]
		}
		mustDecrypt(t, p.alice, mustEncrypt(t, p.bob, p.bobRNG, "ack"), "ack")
	}
	if p.bob.SkippedCount() != MaxSkippedKeys {
		t.Fatalf("%d skipped keys, want the cap %d", p.bob.SkippedCount(), MaxSkippedKeys)
	}
	_, err := p.bob.Decrypt(lost) // evicted: its key is gone for good
	wantErr(t, err, ErrDuplicateMessage)
	mustDecrypt(t, p.bob, kept, "2/0")
}

func TestOldChainBeyondMaxSkipIsDroppedAndTheStepProceeds(t *testing.T) {
	p := newPair(t)
	var frames [][]byte
	for i := 0; i < MaxSkip+3; i++ {
		frames = append(frames, mustEncrypt(t, p.alice, p.aliceRNG, fmt.Sprint(i)))
	}
	mustDecrypt(t, p.bob, frames[0], "0")
	mustDecrypt(t, p.alice, mustEncrypt(t, p.bob, p.bobRNG, "b"), "b")
	next := mustEncrypt(t, p.alice, p.aliceRNG, "new chain") // PN = 1003, 1002 ahead of Bob
	mustDecrypt(t, p.bob, next, "new chain")
	if p.bob.SkippedCount() != 0 {
		t.Fatalf("%d keys of the old chain stored beyond MAX_SKIP", p.bob.SkippedCount())
	}
	_, err := p.bob.Decrypt(frames[5])
	wantErr(t, err, ErrDuplicateMessage)
}

func TestResponderCannotSendFirstAndAFailedEncryptChangesNothing(t *testing.T) {
	p := newPair(t)
	_, err := p.bob.Encrypt([]byte("early"), p.bobRNG)
	wantErr(t, err, ErrNoSession)
	mustDecrypt(t, p.bob, mustEncrypt(t, p.alice, p.aliceRNG, "hi"), "hi")
	empty := NewScriptedEntropy()
	empty.Push(PurposeRatchetKey, bytes.Repeat([]byte{9}, 32)) // a key but no nonce
	before := p.bob.Clone()
	_, err = p.bob.Encrypt([]byte("x"), empty)
	wantErr(t, err, ErrExhausted)
	if !reflect.DeepEqual(before, p.bob) {
		t.Fatal("a failed encrypt changed the state")
	}
}

func TestQuiescentPeersAgreeOnTheDigest(t *testing.T) {
	p := newPair(t)
	for round := 0; round < 5; round++ {
		mustDecrypt(t, p.bob, mustEncrypt(t, p.alice, p.aliceRNG, "ping"), "ping")
		if !bytes.Equal(p.alice.Digest(), p.bob.Digest()) {
			t.Fatalf("round %d: digests differ after alice -> bob", round)
		}
		mustDecrypt(t, p.alice, mustEncrypt(t, p.bob, p.bobRNG, "pong"), "pong")
		if !bytes.Equal(p.alice.Digest(), p.bob.Digest()) {
			t.Fatalf("round %d: digests differ after bob -> alice", round)
		}
	}
}

func TestFrameRoundTripAndTruncations(t *testing.T) {
	p := newPair(t)
	frame := mustEncrypt(t, p.alice, p.aliceRNG, "hello")
	f, err := ParseFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Encode(), frame) || f.N != 0 || f.PN != 0 || binary.BigEndian.Uint32(frame[40:44]) != f.N {
		t.Fatal("DR_V1 parse/encode does not round-trip")
	}
	for i := 0; i < FrameHeaderSize+TagSize; i++ {
		_, err := ParseFrame(frame[:i])
		wantErr(t, err, ErrMalformedEnvelope)
	}
	bad := clone(frame)
	bad[3] = '2'
	_, err = ParseFrame(bad)
	wantErr(t, err, ErrUnsupportedVersion)
}

func FuzzParseFrame(f *testing.F) {
	p := &pair{aliceRNG: &seeded{label: "fuzz"}}
	spk, _ := X25519KeyPair(bytes.Repeat([]byte{7}, 32))
	p.alice, _ = InitAlice(RootKey0(make([]byte, 32)), nil, spk.Public, p.aliceRNG)
	frame, _ := p.alice.Encrypt([]byte("seed"), p.aliceRNG)
	f.Add(frame)
	f.Add([]byte("DRV1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := ParseFrame(data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("non-canonical error %v", err)
			}
			return
		}
		if !bytes.Equal(fr.Encode(), data) {
			t.Fatal("accepted frame does not re-encode to its bytes")
		}
	})
}
