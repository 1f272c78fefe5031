package adapter

import (
	"crypto/hkdf"
	"crypto/sha256"

	"semafore.local/goadapter/protocol"
)

// primitiveOps are the optional single-primitive operations of the contract
// (docs/adapter-contract.md, "Primitive operations"): they let the gate pin down which
// primitive diverges when a protocol case fails.
var primitiveOps = map[string]Handler{
	"x25519.public":  opX25519Public,
	"x25519.dh":      opX25519DH,
	"ed25519.sign":   opEd25519Sign,
	"ed25519.verify": opEd25519Verify,
	"hkdf":           opHKDF,
	"hmac":           opHMAC,
	"aead.seal":      opAEADSeal,
	"aead.open":      opAEADOpen,
}

// maxHKDF is RFC 5869's bound for SHA-256: 255 blocks of 32 bytes.
const maxHKDF = 255 * 32

func opX25519Public(_ *Adapter, args Args) (any, error) {
	priv, err := args.Key("private", 32)
	if err != nil {
		return nil, err
	}
	pair, err := protocol.X25519KeyPair(priv)
	if err != nil {
		return nil, err
	}
	return map[string]any{"public": hexOf(pair.Public)}, nil
}

func opX25519DH(_ *Adapter, args Args) (any, error) {
	priv, err := args.Key("private", 32)
	if err != nil {
		return nil, err
	}
	pub, err := args.Key("public", 32)
	if err != nil {
		return nil, err
	}
	shared, err := protocol.DH(priv, pub, "args.public")
	if err != nil {
		return nil, err
	}
	return map[string]any{"shared": hexOf(shared)}, nil
}

func opEd25519Sign(_ *Adapter, args Args) (any, error) {
	seed, err := args.Key("private", 32)
	if err != nil {
		return nil, err
	}
	msg, err := args.Bytes("message")
	if err != nil {
		return nil, err
	}
	pub, err := protocol.Ed25519Public(seed)
	if err != nil {
		return nil, err
	}
	sig, err := protocol.Ed25519Sign(seed, msg)
	if err != nil {
		return nil, err
	}
	return map[string]any{"public": hexOf(pub), "sig": hexOf(sig)}, nil
}

func opEd25519Verify(_ *Adapter, args Args) (any, error) {
	pub, err := args.Key("public", 32)
	if err != nil {
		return nil, err
	}
	sig, err := args.Bytes("sig")
	if err != nil {
		return nil, err
	}
	msg, err := args.Bytes("message")
	if err != nil {
		return nil, err
	}
	if err := protocol.Ed25519Verify(pub, msg, sig, "args.sig"); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

func opHKDF(_ *Adapter, args Args) (any, error) {
	ikm, err := args.Bytes("ikm")
	if err != nil {
		return nil, err
	}
	salt, err := args.Bytes("salt")
	if err != nil {
		return nil, err
	}
	info, err := args.Bytes("info")
	if err != nil {
		return nil, err
	}
	length, err := args.Int("length", maxHKDF)
	if err != nil {
		return nil, err
	}
	if length < 1 {
		return nil, protocol.Malformed("args.length", "args.length must be in 1..%d", maxHKDF)
	}
	okm, err := hkdf.Key(sha256.New, ikm, salt, string(info), length)
	if err != nil {
		return nil, protocol.Malformed("args.length", "%v", err)
	}
	return map[string]any{"okm": hexOf(okm)}, nil
}

func opHMAC(_ *Adapter, args Args) (any, error) {
	key, err := args.Bytes("key")
	if err != nil {
		return nil, err
	}
	data, err := args.Bytes("data")
	if err != nil {
		return nil, err
	}
	return map[string]any{"mac": hexOf(protocol.HMAC(key, data))}, nil
}

func aeadArgs(args Args, body string) (key, nonce, data, aad []byte, err error) {
	if key, err = args.Key("key", 32); err != nil {
		return
	}
	if nonce, err = args.Key("nonce", protocol.NonceSize); err != nil {
		return
	}
	if data, err = args.Bytes(body); err != nil {
		return
	}
	aad, err = args.Bytes("aad")
	return
}

func opAEADSeal(_ *Adapter, args Args) (any, error) {
	key, nonce, pt, aad, err := aeadArgs(args, "plaintext")
	if err != nil {
		return nil, err
	}
	return map[string]any{"ciphertext": hexOf(protocol.Seal(key, nonce, pt, aad))}, nil
}

func opAEADOpen(_ *Adapter, args Args) (any, error) {
	key, nonce, ct, aad, err := aeadArgs(args, "ciphertext")
	if err != nil {
		return nil, err
	}
	pt, err := protocol.Open(key, nonce, ct, aad, "args.ciphertext")
	if err != nil {
		return nil, err
	}
	return map[string]any{"plaintext": hexOf(pt)}, nil
}
