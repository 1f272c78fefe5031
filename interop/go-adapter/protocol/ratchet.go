package protocol

import "bytes"

// Bounds of SPEC §3.
const (
	MaxSkip          = 1000 // message keys one frame may make us skip
	MaxSkippedKeys   = 2000 // stored skipped keys per session, oldest evicted first
	RetiredChainsCap = 5    // retired receiving chains remembered for duplicate detection
)

type skippedKey struct {
	DH []byte
	N  uint32
	MK []byte
}

// retiredChain remembers a receiving chain we stepped away from and how many of its
// messages we accounted for (received, stored as skipped, or given up as lost), so a replay
// of an old chain is DuplicateMessage without a DH (the reference documents the same choice).
type retiredChain struct {
	DH    []byte
	Count uint32
}

// Ratchet is one Double Ratchet session (SPEC §3). The sending half of a DH ratchet step is
// deferred to the next Encrypt (as the reference does, docs/protocol.md): Decrypt never
// draws randomness, and quiescent peers hold the same root key, so their digests agree.
type Ratchet struct {
	AD          []byte
	RK          []byte
	DHs         KeyPair
	DHr         []byte
	CKs, CKr    []byte
	Ns, Nr, PN  uint32
	PendingStep bool
	Skipped     []skippedKey
	Retired     []retiredChain
	// SkippedUsed counts the frames this session opened with a stored skipped key (the
	// harness's skipped_keys_used statistic, live.stats); a failed decrypt adds nothing.
	SkippedUsed int
}

// KDFRK is KDF_RK: HKDF(dh_out, salt = rk, "SemaFore-DR-v1-ratchet", 64) → (rk', ck).
func KDFRK(rk, dhOut []byte) ([]byte, []byte) {
	out := HKDF(dhOut, rk, InfoRatchet, 64)
	reportSecret("root key", out[:32])
	reportSecret("chain key", out[32:])
	return out[:32], out[32:]
}

// KDFCK is KDF_CK: mk = HMAC(ck, 0x01), ck' = HMAC(ck, 0x02).
func KDFCK(ck []byte) (mk, next []byte) {
	mk, next = HMAC(ck, []byte{0x01}), HMAC(ck, []byte{0x02})
	reportSecret("message key", mk)
	reportSecret("chain key", next)
	return mk, next
}

// MessageKey is the AES key of one message: HKDF(mk, 0x00×32, "SemaFore-DR-v1-msg", 32).
func MessageKey(mk []byte) []byte {
	key := HKDF(mk, zeroSalt, InfoMessage, 32)
	reportSecret("AEAD key", key)
	return key
}

// InitAlice starts the initiator's ratchet: RK, CKs = KDF_RK(RK0, DH(DHs, SPK_B)).
func InitAlice(rk0, ad, spkB []byte, rng Entropy) (*Ratchet, error) {
	priv, err := rng.RandomBytes(32, PurposeRatchetKey)
	if err != nil {
		return nil, err
	}
	reportDrawn(PurposeRatchetKey, priv)
	dhs, err := X25519KeyPair(priv)
	if err != nil {
		return nil, err
	}
	return InitAliceWithKey(rk0, ad, spkB, dhs)
}

// InitAliceWithKey is InitAlice with her first ratchet key pair given.
func InitAliceWithKey(rk0, ad, spkB []byte, dhs KeyPair) (*Ratchet, error) {
	out, err := dhs.DH(spkB, "spk.pub")
	if err != nil {
		return nil, err
	}
	rk, cks := KDFRK(rk0, out)
	return &Ratchet{AD: clone(ad), RK: rk, DHs: dhs, DHr: clone(spkB), CKs: cks}, nil
}

// InitBob starts the responder's ratchet: his first ratchet key pair is his SPK.
func InitBob(rk0, ad []byte, spk KeyPair) *Ratchet {
	return &Ratchet{AD: clone(ad), RK: clone(rk0), DHs: spk}
}

// Clone deep-copies the state (decrypt works on a clone and commits only on success).
func (r *Ratchet) Clone() *Ratchet {
	c := *r
	c.AD, c.RK, c.DHr, c.CKs, c.CKr = clone(r.AD), clone(r.RK), cloneNil(r.DHr), cloneNil(r.CKs), cloneNil(r.CKr)
	c.DHs = KeyPair{Private: clone(r.DHs.Private), Public: clone(r.DHs.Public), key: r.DHs.key}
	c.Skipped = append([]skippedKey(nil), r.Skipped...)
	c.Retired = append([]retiredChain(nil), r.Retired...)
	return &c
}

func cloneNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return clone(b)
}

// Encrypt produces one DR_V1 frame, first completing a deferred DH step if one is due.
// Like Decrypt it is transactional: on any error the state is unchanged.
func (r *Ratchet) Encrypt(plaintext []byte, rng Entropy) ([]byte, error) {
	next := r.Clone()
	frame, err := next.encrypt(plaintext, rng)
	if err != nil {
		return nil, err
	}
	*r = *next
	return frame, nil
}

func (r *Ratchet) encrypt(plaintext []byte, rng Entropy) ([]byte, error) {
	if r.PendingStep {
		if err := r.sendingStep(rng); err != nil {
			return nil, err
		}
	}
	if r.CKs == nil {
		return nil, newErr(ErrNoSession, "sending_chain", "the responder cannot send before it has received a frame")
	}
	nonce, err := rng.RandomBytes(NonceSize, PurposeNonce)
	if err != nil {
		return nil, err
	}
	mk, next := KDFCK(r.CKs)
	f := &Frame{DH: r.DHs.Public, PN: r.PN, N: r.Ns, Nonce: nonce}
	f.Ciphertext = Seal(MessageKey(mk), nonce, plaintext, concat(r.AD, f.Header()))
	r.CKs, r.Ns = next, r.Ns+1
	return f.Encode(), nil
}

// sendingStep is the deferred sending half of a DH ratchet step: a fresh ratchet key pair,
// RK, CKs = KDF_RK(RK, DH(DHs, DHr)), PN = Ns, Ns = 0.
func (r *Ratchet) sendingStep(rng Entropy) error {
	priv, err := rng.RandomBytes(32, PurposeRatchetKey)
	if err != nil {
		return err
	}
	reportDrawn(PurposeRatchetKey, priv)
	dhs, err := X25519KeyPair(priv)
	if err != nil {
		return err
	}
	out, err := dhs.DH(r.DHr, "dhr")
	if err != nil {
		return err
	}
	r.RK, r.CKs = KDFRK(r.RK, out)
	r.DHs, r.PN, r.Ns, r.PendingStep = dhs, r.Ns, 0, false
	return nil
}

// Decrypt opens one DR_V1 frame. It is transactional: the state changes only when the AEAD
// tag verifies; every failure leaves it exactly as it was.
func (r *Ratchet) Decrypt(data []byte) ([]byte, error) {
	f, err := ParseFrame(data)
	if err != nil {
		return nil, err
	}
	next := r.Clone()
	pt, err := next.decrypt(f)
	if err != nil {
		return nil, err
	}
	*r = *next
	return pt, nil
}

func (r *Ratchet) open(f *Frame, mk []byte) ([]byte, error) {
	return Open(MessageKey(mk), f.Nonce, f.Ciphertext, concat(r.AD, f.Header()), "ciphertext")
}

func (r *Ratchet) decrypt(f *Frame) ([]byte, error) {
	for i, s := range r.Skipped {
		if s.N == f.N && bytes.Equal(s.DH, f.DH) {
			pt, err := r.open(f, s.MK)
			if err != nil {
				return nil, err
			}
			r.Skipped = append(r.Skipped[:i:i], r.Skipped[i+1:]...)
			r.SkippedUsed++
			return pt, nil
		}
	}
	if r.CKr != nil && bytes.Equal(f.DH, r.DHr) {
		if f.N < r.Nr {
			return nil, newErr(ErrDuplicateMessage, "n", "message %d of the current chain was already received", f.N)
		}
		if f.N-r.Nr > MaxSkip {
			return nil, newErr(ErrTooManySkipped, "n", "message %d would skip %d keys (MAX_SKIP %d)", f.N, f.N-r.Nr, MaxSkip)
		}
		return r.receive(f)
	}
	for _, c := range r.Retired {
		if bytes.Equal(c.DH, f.DH) {
			if f.N < c.Count {
				return nil, newErr(ErrDuplicateMessage, "n", "message %d of a retired chain was already received", f.N)
			}
			return nil, newErr(ErrDecryptionFailed, "n", "message %d is beyond the end (%d) of a retired chain", f.N, c.Count)
		}
	}
	if f.N > MaxSkip {
		return nil, newErr(ErrTooManySkipped, "n", "message %d of a new chain would skip more than MAX_SKIP %d keys", f.N, MaxSkip)
	}
	// A new ratchet key: finish the old receiving chain, then derive the new one.
	if r.CKr != nil {
		count := r.Nr
		if f.PN > r.Nr {
			count = f.PN
			if f.PN-r.Nr <= MaxSkip {
				r.skipTo(f.PN)
			} // else: those messages are lost; storing them would strand nothing but cost memory
		}
		r.Retired = append(r.Retired, retiredChain{DH: r.DHr, Count: count})
		if len(r.Retired) > RetiredChainsCap {
			r.Retired = r.Retired[len(r.Retired)-RetiredChainsCap:]
		}
	}
	out, err := r.DHs.DH(f.DH, "dh")
	if err != nil {
		return nil, err
	}
	r.RK, r.CKr = KDFRK(r.RK, out)
	r.DHr, r.Nr, r.PendingStep = clone(f.DH), 0, true
	return r.receive(f)
}

// receive skips to f.N in the current receiving chain and opens the frame.
func (r *Ratchet) receive(f *Frame) ([]byte, error) {
	r.skipTo(f.N)
	mk, next := KDFCK(r.CKr)
	pt, err := r.open(f, mk)
	if err != nil {
		return nil, err
	}
	r.CKr, r.Nr = next, r.Nr+1
	return pt, nil
}

func (r *Ratchet) skipTo(until uint32) {
	for r.Nr < until {
		mk, next := KDFCK(r.CKr)
		r.Skipped = append(r.Skipped, skippedKey{DH: clone(r.DHr), N: r.Nr, MK: mk})
		r.CKr, r.Nr = next, r.Nr+1
	}
	if over := len(r.Skipped) - MaxSkippedKeys; over > 0 {
		r.Skipped = append([]skippedKey(nil), r.Skipped[over:]...)
	}
}

// Digest is the session digest of SPEC §7 over the current root key and AD.
func (r *Ratchet) Digest() []byte { return SessionDigest(r.RK, r.AD) }

// SkippedCount reports how many skipped message keys the session holds.
func (r *Ratchet) SkippedCount() int { return len(r.Skipped) }
