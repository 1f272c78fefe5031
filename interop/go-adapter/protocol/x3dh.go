package protocol

import (
	"bytes"
	"crypto/sha256"
)

// HKDF info strings (SPEC §2, §3, §7).
const (
	InfoX3DH      = "SemaFore-X3DH-v1"
	InfoRoot      = "SemaFore-DR-v1-root"
	InfoRatchet   = "SemaFore-DR-v1-ratchet"
	InfoMessage   = "SemaFore-DR-v1-msg"
	DigestContext = "SemaFore-session-digest-v1"
)

// Agreement is everything X3DH derives, exposed so vectors can pin each step.
type Agreement struct {
	DH1, DH2, DH3, DH4 []byte // DH4 nil without OPK
	SK                 []byte
	AD                 []byte
	RK0                []byte
}

// AssociatedData binds both identities and both device addresses (SPEC §2 step 6).
func AssociatedData(ikA, sikA, ikB, sikB []byte, addrA, addrB string) []byte {
	ad := make([]byte, 0, 128+4+len(addrA)+len(addrB))
	ad = append(ad, ikA...)
	ad = append(ad, sikA...)
	ad = append(ad, ikB...)
	ad = append(ad, sikB...)
	ad = append(ad, u16(len(addrA))...)
	ad = append(ad, addrA...)
	ad = append(ad, u16(len(addrB))...)
	return append(ad, addrB...)
}

// RootKey0 derives RK0 from SK (SPEC §3), so SK is used as an AES key only.
func RootKey0(sk []byte) []byte {
	rk := HKDF(sk, zeroSalt, InfoRoot, 32)
	reportSecret("root key", rk)
	return rk
}

func deriveSK(dhs ...[]byte) []byte {
	ikm := bytes.Repeat([]byte{0xFF}, 32)
	for _, d := range dhs {
		ikm = append(ikm, d...)
	}
	sk := HKDF(ikm, zeroSalt, InfoX3DH, 32)
	reportSecret("X3DH SK", sk)
	return sk
}

// Initiator is the state Alice keeps after X3DH until she has heard from Bob: what she
// needs to wrap every frame in an SMX1 (SPEC §2 resend rule).
type Initiator struct {
	Agreement
	EK       KeyPair
	SPKKeyID []byte
	OPKKeyID []byte
	SPKPub   []byte // Bob's first ratchet key
}

// Initiate runs X3DH steps 1–6 for Alice. The signature is verified before any DH.
func Initiate(alice IdentityKeys, addrA string, bob Bundle, rng Entropy) (*Initiator, error) {
	if err := checkBundle(bob); err != nil {
		return nil, err
	}
	ekPriv, err := rng.RandomBytes(32, PurposeEphemeralKey)
	if err != nil {
		return nil, err
	}
	reportDrawn(PurposeEphemeralKey, ekPriv)
	ek, err := X25519KeyPair(ekPriv)
	if err != nil {
		return nil, err
	}
	return initiate(alice, addrA, bob, ek)
}

// InitiateWithEK is Initiate with EK_A given. The bundle's key ids (they must fit the SMX1
// header, SPEC §1) and the signature (SPEC §2 step 1) are checked before any DH.
func InitiateWithEK(alice IdentityKeys, addrA string, bob Bundle, ek KeyPair) (*Initiator, error) {
	if err := checkBundle(bob); err != nil {
		return nil, err
	}
	return initiate(alice, addrA, bob, ek)
}

// initiate is X3DH steps 3–6 on a checked bundle.
func initiate(alice IdentityKeys, addrA string, bob Bundle, ek KeyPair) (*Initiator, error) {
	var a Agreement
	var err error
	if a.DH1, err = alice.IK.DH(bob.SPK.Pub, "spk.pub"); err != nil {
		return nil, err
	}
	if a.DH2, err = ek.DH(bob.IK, "ik"); err != nil {
		return nil, err
	}
	if a.DH3, err = ek.DH(bob.SPK.Pub, "spk.pub"); err != nil {
		return nil, err
	}
	init := &Initiator{EK: ek, SPKKeyID: clone(bob.SPK.KeyID), SPKPub: clone(bob.SPK.Pub)}
	if bob.OPK != nil {
		if a.DH4, err = ek.DH(bob.OPK.Pub, "opk.pub"); err != nil {
			return nil, err
		}
		init.OPKKeyID = clone(bob.OPK.KeyID)
		a.SK = deriveSK(a.DH1, a.DH2, a.DH3, a.DH4)
	} else {
		a.SK = deriveSK(a.DH1, a.DH2, a.DH3)
	}
	a.AD = AssociatedData(alice.IK.Public, alice.SIKPub, bob.IK, bob.SIK, addrA, bob.Address())
	a.RK0 = RootKey0(a.SK)
	init.Agreement = a
	return init, nil
}

// Seal wraps a DR_V1 frame in an SMX1 with the given nonce (SPEC §2 layout).
func (i *Initiator) Seal(frame, nonce []byte) []byte {
	m := &SMX1{OPKUsed: i.OPKKeyID != nil, EK: i.EK.Public, SPKKeyID: i.SPKKeyID, OPKKeyID: i.OPKKeyID, Nonce: nonce}
	header := m.encodeHeader()
	m.Ciphertext = Seal(i.SK, nonce, frame, concat(header, i.AD))
	return m.Encode()
}

// checkBundle validates what the SPK signature covers, verifies it, then the unsigned OPK
// key id: a bundle with several faults reports the signed part's first (as the reference).
func checkBundle(bob Bundle) error {
	if err := ValidateKeyID(bob.SPK.KeyID, "spk.key_id"); err != nil {
		return err
	}
	if err := VerifySPK(bob.SIK, bob.SPK.KeyID, bob.SPK.Pub, bob.IK, bob.SPK.Sig); err != nil {
		return err
	}
	if bob.OPK != nil {
		return ValidateKeyID(bob.OPK.KeyID, "opk.key_id")
	}
	return nil
}

// PrekeyLookup resolves the responder's private prekeys by key id.
type PrekeyLookup interface {
	SignedPrekey(keyID []byte) (KeyPair, bool)
	OneTimePrekey(keyID []byte) (KeyPair, bool)
}

// Response is what Bob derives from an SMX1: the agreement and the inner DR_V1 frame.
type Response struct {
	Agreement
	Envelope *SMX1
	SPK      KeyPair
	Frame    []byte
}

// Respond runs X3DH for Bob on a parsed SMX1 and opens it. Alice's identity keys come from
// the outer envelope through the caller's identity store (SMX1 carries none).
func Respond(bob IdentityKeys, addrB string, prekeys PrekeyLookup, ikA, sikA []byte, addrA string, m *SMX1) (*Response, error) {
	spk, ok := prekeys.SignedPrekey(m.SPKKeyID)
	if !ok {
		return nil, newErr(ErrUnknownPrekey, "spk_key_id", "no signed prekey %q", m.SPKKeyID)
	}
	var opk KeyPair
	if m.OPKUsed {
		if opk, ok = prekeys.OneTimePrekey(m.OPKKeyID); !ok {
			return nil, newErr(ErrUnknownPrekey, "opk_key_id", "no one-time prekey %q", m.OPKKeyID)
		}
	}
	var a Agreement
	var err error
	if a.DH1, err = spk.DH(ikA, "ik_a"); err != nil {
		return nil, err
	}
	if a.DH2, err = bob.IK.DH(m.EK, "ek"); err != nil {
		return nil, err
	}
	if a.DH3, err = spk.DH(m.EK, "ek"); err != nil {
		return nil, err
	}
	if m.OPKUsed {
		if a.DH4, err = opk.DH(m.EK, "ek"); err != nil {
			return nil, err
		}
		a.SK = deriveSK(a.DH1, a.DH2, a.DH3, a.DH4)
	} else {
		a.SK = deriveSK(a.DH1, a.DH2, a.DH3)
	}
	a.AD = AssociatedData(ikA, sikA, bob.IK.Public, bob.SIKPub, addrA, addrB)
	a.RK0 = RootKey0(a.SK)
	frame, err := OpenSMX1(a.SK, a.AD, m)
	if err != nil {
		return nil, err
	}
	return &Response{Agreement: a, Envelope: m, SPK: spk, Frame: frame}, nil
}

// OpenSMX1 decrypts an SMX1's inner frame with SK and AD.
func OpenSMX1(sk, ad []byte, m *SMX1) ([]byte, error) {
	return Open(sk, m.Nonce, m.Ciphertext, concat(m.Header(), ad), "smx1.ciphertext")
}

// SessionDigest is SHA-256("SemaFore-session-digest-v1" || RK || AD) (SPEC §7).
func SessionDigest(rk, ad []byte) []byte {
	h := sha256.New()
	h.Write([]byte(DigestContext))
	h.Write(rk)
	h.Write(ad)
	return h.Sum(nil)
}

func concat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
