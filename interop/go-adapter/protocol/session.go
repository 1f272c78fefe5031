package protocol

import "bytes"

// MaxArchivedSessions is how many archived sessions a record keeps per remote device
// (SPEC §4, libsignal's bound).
const MaxArchivedSessions = 40

// ResetMagic opens a reset notice: "SRS1" || ratchet key (SPEC §4; layout per docs/protocol.md).
var ResetMagic = []byte("SRS1")

// Session is one X3DH-bootstrapped Double Ratchet session with a remote device.
type Session struct {
	Ratchet *Ratchet
	// EK is the EK_A of the X3DH that created the session (both roles): an SMX1 carrying it
	// belongs to this session (SPEC §2 reuse rule).
	EK []byte
	// SK is kept by the responder so a resent SMX1 still opens (docs/protocol.md); nil for
	// the initiator once she has heard from the responder.
	SK []byte
	// Initiator is set while Alice has not decrypted any frame from Bob: until then every
	// frame she sends is wrapped in an SMX1 (SPEC §2 resend rule).
	Initiator *Initiator
}

// Clone deep-copies a session.
func (s *Session) Clone() *Session {
	c := *s
	c.Ratchet = s.Ratchet.Clone()
	return &c
}

// SessionRecord holds the sessions with one remote device: the current one and up to 40
// archived ones, newest first (SPEC §4).
type SessionRecord struct {
	Current  *Session
	Archived []*Session
}

// Clone deep-copies the record (decrypt commits a copy only on success).
func (r *SessionRecord) Clone() *SessionRecord {
	c := &SessionRecord{}
	if r.Current != nil {
		c.Current = r.Current.Clone()
	}
	for _, s := range r.Archived {
		c.Archived = append(c.Archived, s.Clone())
	}
	return c
}

// Install makes s current and archives the previous current session.
func (r *SessionRecord) Install(s *Session) {
	if r.Current != nil {
		r.Archived = append([]*Session{r.Current}, r.Archived...)
		if len(r.Archived) > MaxArchivedSessions {
			r.Archived = r.Archived[:MaxArchivedSessions]
		}
	}
	r.Current = s
}

func (r *SessionRecord) promote(i int) {
	s := r.Archived[i]
	r.Archived = append(r.Archived[:i:i], r.Archived[i+1:]...)
	r.Install(s)
}

// StartSession bootstraps a session as the initiator from a fetched bundle: X3DH (signature
// first), then Alice's ratchet. Every frame until Bob's first reply travels in an SMX1.
func StartSession(alice IdentityKeys, addrA string, bob Bundle, rng Entropy) (*Session, error) {
	init, err := Initiate(alice, addrA, bob, rng)
	if err != nil {
		return nil, err
	}
	ratchet, err := InitAlice(init.RK0, init.AD, init.SPKPub, rng)
	if err != nil {
		return nil, err
	}
	return &Session{Ratchet: ratchet, EK: init.EK.Public, Initiator: init}, nil
}

// Encrypt seals one message with the current session: an SMX1 around the frame until the
// responder has answered, a bare DR_V1 frame afterwards. The outer nonce is drawn before
// the frame's (the reference's documented draw order, so scripted runs agree byte for byte).
// On error nothing changes.
func (r *SessionRecord) Encrypt(plaintext []byte, rng Entropy) ([]byte, error) {
	if r.Current == nil {
		return nil, newErr(ErrNoSession, "session", "no session with this device")
	}
	s := r.Current.Clone()
	var outer []byte
	var err error
	if s.Initiator != nil {
		if outer, err = rng.RandomBytes(NonceSize, PurposeNonce); err != nil {
			return nil, err
		}
	}
	frame, err := s.Ratchet.Encrypt(plaintext, rng)
	if err != nil {
		return nil, err
	}
	if s.Initiator != nil {
		frame = s.Initiator.Seal(frame, outer)
	}
	r.Current = s
	return frame, nil
}

// LocalDevice is what the responder needs from its own device: identity and private prekeys.
type LocalDevice interface {
	Identity() IdentityKeys
	Address() string
	PrekeyLookup
	// ConsumeOneTimePrekey deletes an OPK after a bootstrap that used it authenticated.
	ConsumeOneTimePrekey(keyID []byte)
}

// Remote is the sender device as the outer envelope names it, with the identity keys the
// caller's identity store resolved for it (SMX1 carries none, SPEC §2).
type Remote struct {
	IK, SIK []byte
	Address string
}

// Decrypt opens an SMX1 or DR_V1 envelope from one remote device (SPEC §2, §4). SMX1: an
// existing session with the same EK_A is reused; otherwise X3DH runs and the new session
// becomes current once its inner frame authenticated (then the OPK is deleted). DR_V1: the
// current session, then archived ones newest first; one that succeeds becomes current. The
// record (and the device's OPKs) change only on success.
func (r *SessionRecord) Decrypt(local LocalDevice, remote Remote, envelope []byte) ([]byte, error) {
	next := r.Clone()
	pt, consumed, err := next.decrypt(local, remote, envelope)
	if err != nil {
		return nil, err
	}
	*r = *next
	if consumed != nil {
		local.ConsumeOneTimePrekey(consumed)
	}
	return pt, nil
}

func (r *SessionRecord) sessions() []*Session {
	var all []*Session
	if r.Current != nil {
		all = append(all, r.Current)
	}
	return append(all, r.Archived...)
}

// SkippedKeysUsed sums Ratchet.SkippedUsed over the record's sessions.
func (r *SessionRecord) SkippedKeysUsed() int {
	n := 0
	for _, s := range r.sessions() {
		n += s.Ratchet.SkippedUsed
	}
	return n
}

// use decrypts frame with the i-th of sessions() and makes that session current.
func (r *SessionRecord) use(i int, frame []byte) ([]byte, error) {
	s := r.sessions()[i]
	pt, err := s.Ratchet.Decrypt(frame)
	if err != nil {
		return nil, err
	}
	s.Initiator = nil // heard from the responder: stop wrapping in SMX1
	switch {
	case r.Current == nil:
		r.promote(i)
	case i > 0:
		r.promote(i - 1)
	}
	return pt, nil
}

func (r *SessionRecord) decrypt(local LocalDevice, remote Remote, envelope []byte) ([]byte, []byte, error) {
	if len(envelope) >= 3 && bytes.Equal(envelope[:3], SMX1Magic[:3]) {
		return r.decryptSMX1(local, remote, envelope)
	}
	if len(envelope) >= 4 && bytes.Equal(envelope[:4], ResetMagic) {
		return nil, nil, Malformed("magic", "a reset notice is not a message; use HandleReset")
	}
	if _, err := ParseFrame(envelope); err != nil {
		return nil, nil, err
	}
	all := r.sessions()
	if len(all) == 0 {
		return nil, nil, newErr(ErrNoSession, "session", "no session with %s", remote.Address)
	}
	var first error
	for i := range all {
		trial := r.Clone()
		pt, err := trial.use(i, envelope)
		if err == nil {
			*r = *trial
			return pt, nil, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, nil, first // the current session's verdict names the failure
}

func (r *SessionRecord) decryptSMX1(local LocalDevice, remote Remote, envelope []byte) ([]byte, []byte, error) {
	m, err := ParseSMX1(envelope)
	if err != nil {
		return nil, nil, err
	}
	for i, s := range r.sessions() {
		if s.SK != nil && bytes.Equal(s.EK, m.EK) {
			frame, err := OpenSMX1(s.SK, s.Ratchet.AD, m)
			if err != nil {
				return nil, nil, err
			}
			pt, err := r.use(i, frame)
			return pt, nil, err
		}
	}
	resp, err := Respond(local.Identity(), local.Address(), local, remote.IK, remote.SIK, remote.Address, m)
	if err != nil {
		return nil, nil, err
	}
	s := &Session{Ratchet: InitBob(resp.RK0, resp.AD, resp.SPK), EK: clone(m.EK), SK: resp.SK}
	pt, err := s.Ratchet.Decrypt(resp.Frame)
	if err != nil {
		return nil, nil, err
	}
	r.Install(s)
	var consumed []byte
	if m.OPKUsed {
		consumed = clone(m.OPKKeyID)
	}
	return pt, consumed, nil
}

// ResetNotice is the SPEC §4 reset envelope naming a failed frame's ratchet key.
func ResetNotice(ratchetKey []byte) []byte { return concat(ResetMagic, ratchetKey) }

// HandleReset archives the current session only when the notice names its current sending
// ratchet key; any other notice (replayed, forged, stale) is ignored. Reports whether the
// session was archived, so the caller bootstraps afresh on its next message.
func (r *SessionRecord) HandleReset(notice []byte) (bool, error) {
	if len(notice) != len(ResetMagic)+KeySize || !bytes.Equal(notice[:4], ResetMagic) {
		return false, Malformed("reset", "a reset notice is \"SRS1\" followed by a 32-byte ratchet key")
	}
	if r.Current == nil || !bytes.Equal(r.Current.Ratchet.DHs.Public, notice[4:]) {
		return false, nil
	}
	r.ArchiveCurrent()
	return true, nil
}

// ArchiveCurrent moves the current session to the archive (the remote device was removed,
// reinstalled or asked for a reset): the next message bootstraps afresh, while frames still
// in flight on the old session keep decrypting.
func (r *SessionRecord) ArchiveCurrent() {
	if r.Current == nil {
		return
	}
	old := r.Current
	r.Current = nil
	r.Archived = append([]*Session{old}, r.Archived...)
	if len(r.Archived) > MaxArchivedSessions {
		r.Archived = r.Archived[:MaxArchivedSessions]
	}
}

// FailedFrameKey is the ratchet key a reset notice names for an undecryptable DR_V1 frame.
// An SMX1's ratchet key is inside its ciphertext, so an SMX1 that cannot be opened has none.
func FailedFrameKey(envelope []byte) ([]byte, bool) {
	f, err := ParseFrame(envelope)
	if err != nil {
		return nil, false
	}
	return f.DH, true
}
