package protocol

import (
	"unicode"
	"unicode/utf8"
)

// SPKSignatureDomain is the domain-separation prefix of the SPK signature (SPEC §1).
const SPKSignatureDomain = "SemaFore-SPK-v1"

// ValidateKeyID enforces SPEC §1: 1–255 bytes of UTF-8 with no control characters.
// The returned error is MalformedEnvelope naming the field, because key ids reach us in SMX1.
func ValidateKeyID(keyID []byte, field string) error {
	if len(keyID) < 1 || len(keyID) > 255 {
		return Malformed(field, "key id must be 1..255 bytes, got %d", len(keyID))
	}
	if !utf8.Valid(keyID) {
		return Malformed(field, "key id is not valid UTF-8")
	}
	for _, r := range string(keyID) {
		if unicode.IsControl(r) || (r >= 0xD800 && r <= 0xDFFF) {
			return Malformed(field, "key id contains control character U+%04X", r)
		}
	}
	return nil
}

// SPKSignedMessage is the byte string the SIK signs for a signed prekey (SPEC §1).
func SPKSignedMessage(keyID, spkPub, ikPub []byte) []byte {
	m := make([]byte, 0, len(SPKSignatureDomain)+2+len(keyID)+64)
	m = append(m, SPKSignatureDomain...)
	m = append(m, u16(len(keyID))...)
	m = append(m, keyID...)
	m = append(m, spkPub...)
	return append(m, ikPub...)
}

// SignSPK signs a signed prekey with the identity signing key's seed.
func SignSPK(sikSeed, keyID, spkPub, ikPub []byte) ([]byte, error) {
	if err := ValidateKeyID(keyID, "spk.key_id"); err != nil {
		return nil, err
	}
	return Ed25519Sign(sikSeed, SPKSignedMessage(keyID, spkPub, ikPub))
}

// VerifySPK verifies a bundle's SPK signature; failure is InvalidSignature.
func VerifySPK(sikPub, keyID, spkPub, ikPub, sig []byte) error {
	return Ed25519Verify(sikPub, SPKSignedMessage(keyID, spkPub, ikPub), sig, "spk.sig")
}

// PrekeyRef is a public prekey with its id, as a bundle carries it.
type PrekeyRef struct {
	KeyID []byte
	Pub   []byte
}

// SignedPrekey is the bundle's signed prekey.
type SignedPrekey struct {
	KeyID []byte
	Pub   []byte
	Sig   []byte
}

// Bundle is the public key bundle of one device (SPEC §1). OPK is nil when none was claimed.
type Bundle struct {
	UserID   string
	DeviceID string
	IK       []byte
	SIK      []byte
	SPK      SignedPrekey
	OPK      *PrekeyRef
}

// Address is the device address "<user_id>:<device_id>" bound into AD (SPEC §2).
func (b Bundle) Address() string { return b.UserID + ":" + b.DeviceID }

// Prekey is a private prekey held by the responder.
type Prekey struct {
	KeyID []byte
	Pair  KeyPair
}

// IdentityKeys are a device's long-term private keys (raw forms).
type IdentityKeys struct {
	IK     KeyPair
	SIK    []byte // Ed25519 seed
	SIKPub []byte
}

// NewIdentityKeys derives the public halves of raw private identity keys.
func NewIdentityKeys(ikPriv, sikSeed []byte) (IdentityKeys, error) {
	ik, err := X25519KeyPair(ikPriv)
	if err != nil {
		return IdentityKeys{}, err
	}
	sikPub, err := Ed25519Public(sikSeed)
	if err != nil {
		return IdentityKeys{}, err
	}
	return IdentityKeys{IK: ik, SIK: clone(sikSeed), SIKPub: sikPub}, nil
}
