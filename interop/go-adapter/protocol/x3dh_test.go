package protocol

import (
	"bytes"
	"errors"
	"testing"
)

type device struct {
	id   IdentityKeys
	spk  Prekey
	opk  Prekey
	addr string
}

func newDevice(t *testing.T, seed byte, addr string) device {
	t.Helper()
	id, err := NewIdentityKeys(bytes.Repeat([]byte{seed}, 32), bytes.Repeat([]byte{seed + 1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	spk, _ := X25519KeyPair(bytes.Repeat([]byte{seed + 2}, 32))
	opk, _ := X25519KeyPair(bytes.Repeat([]byte{seed + 3}, 32))
	return device{id: id, spk: Prekey{KeyID: []byte("spk-1"), Pair: spk}, opk: Prekey{KeyID: []byte("opk-1"), Pair: opk}, addr: addr}
}

func (d device) bundle(t *testing.T, withOPK bool) Bundle {
	t.Helper()
	sig, err := SignSPK(d.id.SIK, d.spk.KeyID, d.spk.Pair.Public, d.id.IK.Public)
	if err != nil {
		t.Fatal(err)
	}
	b := Bundle{UserID: "bob", DeviceID: "laptop", IK: d.id.IK.Public, SIK: d.id.SIKPub,
		SPK: SignedPrekey{KeyID: d.spk.KeyID, Pub: d.spk.Pair.Public, Sig: sig}}
	if withOPK {
		b.OPK = &PrekeyRef{KeyID: d.opk.KeyID, Pub: d.opk.Pair.Public}
	}
	return b
}

func (d device) SignedPrekey(id []byte) (KeyPair, bool) {
	return d.spk.Pair, bytes.Equal(id, d.spk.KeyID)
}

func (d device) OneTimePrekey(id []byte) (KeyPair, bool) {
	return d.opk.Pair, bytes.Equal(id, d.opk.KeyID)
}

func TestX3DHBothSidesAgreeAndTheFirstFrameOpens(t *testing.T) {
	alice, bob := newDevice(t, 10, "alice:phone"), newDevice(t, 20, "bob:laptop")
	for _, withOPK := range []bool{false, true} {
		init, err := Initiate(alice.id, alice.addr, bob.bundle(t, withOPK), &seeded{label: "x3dh"})
		if err != nil {
			t.Fatal(err)
		}
		smx1 := init.Seal([]byte("first frame"), bytes.Repeat([]byte{5}, 12))
		m, err := ParseSMX1(smx1)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Encode(), smx1) || m.OPKUsed != withOPK {
			t.Fatal("SMX1 parse/encode does not round-trip")
		}
		r, err := Respond(bob.id, "bob:laptop", bob, alice.id.IK.Public, alice.id.SIKPub, alice.addr, m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.SK, init.SK) || !bytes.Equal(r.AD, init.AD) || !bytes.Equal(r.RK0, init.RK0) {
			t.Fatal("initiator and responder disagree")
		}
		if string(r.Frame) != "first frame" {
			t.Fatalf("opened %q", r.Frame)
		}
		// An unknown-key-share relabel (same keys, another address) does not open.
		_, err = Respond(bob.id, "bob:laptop", bob, alice.id.IK.Public, alice.id.SIKPub, "mallory:phone", m)
		wantErr(t, err, ErrDecryptionFailed)
	}
}

// A bundle with a bad signature *and* a small-order SPK: if any DH ran before the
// signature check, the error would be InvalidKey. SPEC §2 step 1 demands InvalidSignature.
func TestSignatureIsVerifiedBeforeAnyDH(t *testing.T) {
	alice, bob := newDevice(t, 10, "alice:phone"), newDevice(t, 20, "bob:laptop")
	b := bob.bundle(t, true)
	b.SPK.Pub = make([]byte, 32) // small order; the signature no longer covers it
	_, err := Initiate(alice.id, alice.addr, b, &seeded{label: "x"})
	wantErr(t, err, ErrInvalidSignature)
	b = bob.bundle(t, true)
	b.SPK.Sig[63] |= 0xF0 // S >= L: not canonical (RFC 8032 strict)
	_, err = Initiate(alice.id, alice.addr, b, &seeded{label: "x"})
	wantErr(t, err, ErrInvalidSignature)
}

func TestSMX1TruncationsAndFieldErrors(t *testing.T) {
	alice, bob := newDevice(t, 10, "alice:phone"), newDevice(t, 20, "bob:laptop")
	init, err := Initiate(alice.id, alice.addr, bob.bundle(t, true), &seeded{label: "x"})
	if err != nil {
		t.Fatal(err)
	}
	smx1 := init.Seal([]byte("f"), make([]byte, 12))
	headerEnd := 41 + len("spk-1") + len("opk-1") + NonceSize + TagSize
	for i := 0; i < headerEnd; i++ {
		_, err := ParseSMX1(smx1[:i])
		wantErr(t, err, ErrMalformedEnvelope)
	}
	cases := map[string]func([]byte) []byte{
		"flags":          func(b []byte) []byte { b[4] = 2; return b },
		"l1 zero":        func(b []byte) []byte { b[37], b[38] = 0, 0; return b },
		"l2 no flag":     func(b []byte) []byte { b[4] = 0; return b },
		"control in id":  func(b []byte) []byte { b[39] = 0x07; return b },
		"bad utf8 in id": func(b []byte) []byte { b[39] = 0xC3; return b },
	}
	for name, mutate := range cases {
		_, err := ParseSMX1(mutate(clone(smx1)))
		var pe *Error
		if !errors.As(err, &pe) || pe.Name != ErrMalformedEnvelope || pe.Field == "" {
			t.Fatalf("%s: got %v, want MalformedEnvelope naming a field", name, err)
		}
	}
	v2 := clone(smx1)
	v2[3] = '2'
	_, err = ParseSMX1(v2)
	wantErr(t, err, ErrUnsupportedVersion)
}

func TestKeyIDRules(t *testing.T) {
	for id, ok := range map[string]bool{
		"spk-1": true, "clé-🔑": true, string(bytes.Repeat([]byte{'k'}, 255)): true,
		"": false, string(bytes.Repeat([]byte{'k'}, 256)): false, "a\x00": false, "a\u0085": false, "\xff": false,
	} {
		if err := ValidateKeyID([]byte(id), "key_id"); (err == nil) != ok {
			t.Errorf("key id %q: got %v, want ok=%v", id, err, ok)
		}
	}
}

func FuzzParseSMX1(f *testing.F) {
	f.Add([]byte("SMX1\x00"))
	f.Add(append([]byte("SMX1\x01"), make([]byte, 100)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseSMX1(data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("non-canonical error %v", err)
			}
			return
		}
		if !bytes.Equal(m.Encode(), data) {
			t.Fatal("accepted envelope does not re-encode to its bytes")
		}
	})
}
