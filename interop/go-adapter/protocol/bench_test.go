package protocol

import (
	"bytes"
	"testing"
)

// go test -bench . ./protocol — µs per encrypt+decrypt pair of a 256-byte payload, one-way
// and ping-pong (a DH ratchet step per message), and a full X3DH initiate+respond; the same
// shapes the Python benchmark (benchmarks/) reports for the reference.

var payload = bytes.Repeat([]byte{0xAB}, 256)

func BenchmarkOneWayPair(b *testing.B) {
	p := newPair(&testing.T{})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, _ := p.alice.Encrypt(payload, p.aliceRNG)
		if _, err := p.bob.Decrypt(f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPingPongPair(b *testing.B) {
	p := newPair(&testing.T{})
	f, _ := p.alice.Encrypt(payload, p.aliceRNG)
	if _, err := p.bob.Decrypt(f); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		from, to, rng := p.bob, p.alice, p.bobRNG
		if i%2 == 1 {
			from, to, rng = p.alice, p.bob, p.aliceRNG
		}
		f, _ := from.Encrypt(payload, rng)
		if _, err := to.Decrypt(f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkX3DHInitiateRespond(b *testing.B) {
	t := &testing.T{}
	alice, bob := newDevice(t, 10, "alice:phone"), newDevice(t, 20, "bob:laptop")
	bundle := bob.bundle(t, true)
	rng := &seeded{label: "bench"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		init, err := Initiate(alice.id, alice.addr, bundle, rng)
		if err != nil {
			b.Fatal(err)
		}
		m, _ := ParseSMX1(init.Seal(payload, make([]byte, 12)))
		if _, err := Respond(bob.id, "bob:laptop", bob, alice.id.IK.Public, alice.id.SIKPub, alice.addr, m); err != nil {
			b.Fatal(err)
		}
	}
}
