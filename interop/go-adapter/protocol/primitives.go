package protocol

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
)

// KeySize is the size of every raw key and shared secret (RFC 7748, RFC 8032).
const KeySize = 32

// NonceSize is the AES-GCM nonce size carried in SMX1 and DR_V1.
const NonceSize = 12

// TagSize is the AES-GCM tag size.
const TagSize = 16

var zeroSalt = make([]byte, 32)

// KeyPair is an X25519 key pair in raw form. It keeps the parsed private key so a DH does
// not recompute the public key (crypto/ecdh derives it eagerly: one wasted scalar
// multiplication per DH otherwise).
type KeyPair struct {
	Private []byte
	Public  []byte
	key     *ecdh.PrivateKey
}

// DH is X25519(k, public) with the canonical small-order rejection of package-level DH.
func (k KeyPair) DH(public []byte, field string) ([]byte, error) {
	if k.key == nil {
		return DH(k.Private, public, field)
	}
	return ecdhWith(k.key, public, field)
}

// X25519KeyPair derives the key pair of a raw 32-byte private key.
func X25519KeyPair(private []byte) (KeyPair, error) {
	if len(private) != KeySize {
		return KeyPair{}, newErr(ErrInvalidKey, "private_key", "X25519 private key must be 32 bytes, got %d", len(private))
	}
	k, err := ecdh.X25519().NewPrivateKey(private)
	if err != nil {
		return KeyPair{}, newErr(ErrInvalidKey, "private_key", "%v", err)
	}
	return KeyPair{Private: clone(private), Public: k.PublicKey().Bytes(), key: k}, nil
}

// DH is X25519(private, public); an all-zero output (small-order point) is InvalidKey.
func DH(private, public []byte, field string) ([]byte, error) {
	if len(private) != KeySize {
		return nil, newErr(ErrInvalidKey, field, "X25519 private key must be 32 bytes")
	}
	if len(public) != KeySize {
		return nil, newErr(ErrInvalidKey, field, "X25519 public key must be 32 bytes, got %d", len(public))
	}
	priv, err := ecdh.X25519().NewPrivateKey(private)
	if err != nil {
		return nil, newErr(ErrInvalidKey, field, "%v", err)
	}
	return ecdhWith(priv, public, field)
}

func ecdhWith(priv *ecdh.PrivateKey, public []byte, field string) ([]byte, error) {
	if len(public) != KeySize {
		return nil, newErr(ErrInvalidKey, field, "X25519 public key must be 32 bytes, got %d", len(public))
	}
	pub, err := ecdh.X25519().NewPublicKey(public)
	if err != nil {
		return nil, newErr(ErrInvalidKey, field, "%v", err)
	}
	out, err := priv.ECDH(pub)
	if err != nil || subtle.ConstantTimeCompare(out, make([]byte, KeySize)) == 1 {
		return nil, newErr(ErrInvalidKey, field, "X25519 output is all zero (small-order public key)")
	}
	return out, nil
}

// HKDF is HKDF-SHA256 (RFC 5869).
func HKDF(ikm, salt []byte, info string, length int) []byte {
	out, err := hkdf.Key(sha256.New, ikm, salt, info, length)
	if err != nil {
		panic("hkdf: " + err.Error()) // only for length > 255*32, never used
	}
	return out
}

// HMAC is HMAC-SHA256.
func HMAC(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

func gcm(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("aes: " + err.Error()) // keys are always 32 bytes here
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		panic("gcm: " + err.Error())
	}
	return a
}

// Seal is AES-256-GCM encryption; the output is ciphertext || tag.
func Seal(key, nonce, plaintext, aad []byte) []byte {
	return gcm(key).Seal(nil, nonce, plaintext, aad)
}

// Open is AES-256-GCM decryption; a bad tag is DecryptionFailed.
func Open(key, nonce, ciphertext, aad []byte, field string) ([]byte, error) {
	pt, err := gcm(key).Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, newErr(ErrDecryptionFailed, field, "AES-256-GCM tag does not verify")
	}
	return pt, nil
}

// Ed25519Public derives the public key of a raw 32-byte Ed25519 seed.
func Ed25519Public(seed []byte) ([]byte, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, newErr(ErrInvalidKey, "signing_key", "Ed25519 private key must be 32 bytes, got %d", len(seed))
	}
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), nil
}

// Ed25519Sign signs with a raw 32-byte seed (RFC 8032, deterministic).
func Ed25519Sign(seed, msg []byte) ([]byte, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, newErr(ErrInvalidKey, "signing_key", "Ed25519 private key must be 32 bytes, got %d", len(seed))
	}
	return ed25519.Sign(ed25519.NewKeyFromSeed(seed), msg), nil
}

// Ed25519Verify checks a signature; any failure, including a malformed key, is InvalidSignature.
func Ed25519Verify(public, msg, sig []byte, field string) error {
	if len(public) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize || !ed25519.Verify(public, msg, sig) {
		return newErr(ErrInvalidSignature, field, "Ed25519 signature does not verify")
	}
	return nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func u16(n int) []byte { return []byte{byte(n >> 8), byte(n)} }

func u32(n uint32) []byte { return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} }
