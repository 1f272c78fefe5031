package protocol

import (
	"bytes"
	"testing"
)

type peer struct {
	dev     *Device
	rng     *seeded
	records map[string]*SessionRecord // by remote address
}

func newPeer(t *testing.T, user, device string) *peer {
	t.Helper()
	rng := &seeded{label: user + ":" + device}
	d, err := GenerateDevice(user, device, 5, rng)
	if err != nil {
		t.Fatal(err)
	}
	return &peer{dev: d, rng: rng, records: map[string]*SessionRecord{}}
}

func (p *peer) record(addr string) *SessionRecord {
	if p.records[addr] == nil {
		p.records[addr] = &SessionRecord{}
	}
	return p.records[addr]
}

func (p *peer) start(t *testing.T, to *peer, withOPK bool) {
	t.Helper()
	var opk []byte
	if withOPK {
		opk = to.dev.OPKs[0].KeyID
	}
	s, err := StartSession(p.dev.Keys, p.dev.Address(), to.dev.Bundle(opk), p.rng)
	if err != nil {
		t.Fatal(err)
	}
	p.record(to.dev.Address()).Install(s)
}

func (p *peer) send(t *testing.T, to *peer, msg string) []byte {
	t.Helper()
	env, err := p.record(to.dev.Address()).Encrypt([]byte(msg), p.rng)
	if err != nil {
		t.Fatalf("%s -> %s: %v", p.dev.Address(), to.dev.Address(), err)
	}
	return env
}

func (p *peer) receive(from *peer, env []byte) ([]byte, error) {
	remote := Remote{IK: from.dev.Keys.IK.Public, SIK: from.dev.Keys.SIKPub, Address: from.dev.Address()}
	return p.record(from.dev.Address()).Decrypt(p.dev, remote, env)
}

func (p *peer) mustReceive(t *testing.T, from *peer, env []byte, want string) {
	t.Helper()
	pt, err := p.receive(from, env)
	if err != nil || string(pt) != want {
		t.Fatalf("%s from %s: got %q, %v; want %q", p.dev.Address(), from.dev.Address(), pt, err, want)
	}
}

func isSMX1(env []byte) bool { return bytes.HasPrefix(env, SMX1Magic) }

func TestSMX1UntilTheFirstReplyAndALostFirstMessage(t *testing.T) {
	alice, bob := newPeer(t, "alice", "phone"), newPeer(t, "bob", "laptop")
	alice.start(t, bob, true)
	lost := alice.send(t, bob, "lost")
	second := alice.send(t, bob, "second")
	if !isSMX1(lost) || !isSMX1(second) {
		t.Fatal("frames before the first reply must be SMX1")
	}
	opks := len(bob.dev.OPKs)
	bob.mustReceive(t, alice, second, "second") // the first never arrives: the second bootstraps
	if len(bob.dev.OPKs) != opks-1 {
		t.Fatal("the OPK was not deleted after the bootstrap")
	}
	bob.mustReceive(t, alice, lost, "lost") // late: same EK_A, the session is reused
	if len(bob.record(alice.dev.Address()).Archived) != 0 {
		t.Fatal("a resent SMX1 with the same EK_A started a second session")
	}
	_, err := bob.receive(alice, second)
	wantErr(t, err, ErrDuplicateMessage)
	reply := bob.send(t, alice, "reply")
	if isSMX1(reply) {
		t.Fatal("the responder wraps nothing")
	}
	alice.mustReceive(t, bob, reply, "reply")
	if next := alice.send(t, bob, "bare"); isSMX1(next) {
		t.Fatal("after the first reply Alice must send bare DR_V1")
	} else {
		bob.mustReceive(t, alice, next, "bare")
	}
	if !bytes.Equal(alice.record(bob.dev.Address()).Current.Ratchet.Digest(), bob.record(alice.dev.Address()).Current.Ratchet.Digest()) {
		t.Fatal("quiescent peers disagree on the session digest")
	}
}

func TestAForgedSMX1BurnsNoPrekeyAndChangesNothing(t *testing.T) {
	alice, bob := newPeer(t, "alice", "phone"), newPeer(t, "bob", "laptop")
	alice.start(t, bob, true)
	env := alice.send(t, bob, "hi")
	env[len(env)-1] ^= 1
	opks := len(bob.dev.OPKs)
	_, err := bob.receive(alice, env)
	wantErr(t, err, ErrDecryptionFailed)
	if len(bob.dev.OPKs) != opks || bob.record(alice.dev.Address()).Current != nil {
		t.Fatal("a forged SMX1 changed the responder")
	}
	env[len(env)-1] ^= 1
	bob.mustReceive(t, alice, env, "hi")
	// Replayed to a device that no longer has the OPK and no session: UnknownPrekey.
	bob.records = map[string]*SessionRecord{}
	_, err = bob.receive(alice, env)
	wantErr(t, err, ErrUnknownPrekey)
}

func TestSimultaneousInitiationConverges(t *testing.T) {
	alice, bob := newPeer(t, "alice", "phone"), newPeer(t, "bob", "laptop")
	alice.start(t, bob, true)
	bob.start(t, alice, true)
	a1, b1 := alice.send(t, bob, "a1"), bob.send(t, alice, "b1")
	bob.mustReceive(t, alice, a1, "a1")
	alice.mustReceive(t, bob, b1, "b1")
	for i, msg := range []string{"x", "y", "z"} {
		if i%2 == 0 {
			bob.mustReceive(t, alice, alice.send(t, bob, msg), msg)
		} else {
			alice.mustReceive(t, bob, bob.send(t, alice, msg), msg)
		}
	}
	alice.mustReceive(t, bob, bob.send(t, alice, "last"), "last")
	ra, rb := alice.record(bob.dev.Address()).Current, bob.record(alice.dev.Address()).Current
	if !bytes.Equal(ra.Ratchet.Digest(), rb.Ratchet.Digest()) {
		t.Fatal("simultaneous initiation did not converge on one session")
	}
}

func TestResetArchivesOnlyForTheCurrentSendingKey(t *testing.T) {
	alice, bob := newPeer(t, "alice", "phone"), newPeer(t, "bob", "laptop")
	alice.start(t, bob, false)
	bob.mustReceive(t, alice, alice.send(t, bob, "hi"), "hi")
	rec := alice.record(bob.dev.Address())
	if done, err := rec.HandleReset(ResetNotice(bytes.Repeat([]byte{1}, 32))); done || err != nil {
		t.Fatalf("a reset naming another key acted: %v %v", done, err)
	}
	if _, err := rec.HandleReset([]byte("SRS1short")); err == nil {
		t.Fatal("a malformed reset was accepted")
	}
	key := rec.Current.Ratchet.DHs.Public
	if done, err := rec.HandleReset(ResetNotice(key)); !done || err != nil {
		t.Fatalf("reset for the current key ignored: %v", err)
	}
	_, err := rec.Encrypt([]byte("x"), alice.rng)
	wantErr(t, err, ErrNoSession)
	alice.start(t, bob, true) // fresh bundle, new session
	bob.mustReceive(t, alice, alice.send(t, bob, "again"), "again")
}

func TestArchivedSessionsAreBounded(t *testing.T) {
	alice, bob := newPeer(t, "alice", "phone"), newPeer(t, "bob", "laptop")
	for i := 0; i < MaxArchivedSessions+5; i++ {
		alice.start(t, bob, false)
	}
	rec := alice.record(bob.dev.Address())
	if len(rec.Archived) != MaxArchivedSessions {
		t.Fatalf("%d archived sessions, want %d", len(rec.Archived), MaxArchivedSessions)
	}
}

func TestIdentityStoreIsTrustOnFirstUse(t *testing.T) {
	var s IdentityStore
	ik, sik := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	if err := s.Check("bob:laptop", ik, sik, false); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.Check("bob:laptop", sik, ik, false), ErrUntrustedIdentity)
	if err := s.Check("bob:laptop", sik, ik, true); err != nil {
		t.Fatal(err)
	}
}

func TestArchiveCurrentKeepsTheSessionForFramesInFlight(t *testing.T) {
	alice, bob := newPeer(t, "alice", "phone"), newPeer(t, "bob", "phone")
	alice.start(t, bob, true)
	first := alice.send(t, bob, "one")
	bob.mustReceive(t, alice, first, "one")
	alice.mustReceive(t, bob, bob.send(t, alice, "two"), "two")
	late := alice.send(t, bob, "late")
	rec := bob.record(alice.dev.Address())
	rec.ArchiveCurrent()
	if rec.Current != nil || len(rec.Archived) != 1 {
		t.Fatalf("after ArchiveCurrent: current %v, %d archived", rec.Current, len(rec.Archived))
	}
	rec.ArchiveCurrent() // nothing current: a no-op
	if len(rec.Archived) != 1 {
		t.Fatalf("archiving nothing changed the archive: %d", len(rec.Archived))
	}
	bob.mustReceive(t, alice, late, "late") // the archived session still opens it and is current again
	if rec.Current == nil {
		t.Fatal("the session that opened a frame becomes current again")
	}
}

func TestSeededEntropyIsReproducibleAndSeedSpecific(t *testing.T) {
	a, b, c := NewSeededEntropy("s:alice:phone:0"), NewSeededEntropy("s:alice:phone:0"), NewSeededEntropy("s:alice:phone:1")
	for _, n := range []int{32, 12, 100} {
		x, _ := a.RandomBytes(n, "nonce")
		y, _ := b.RandomBytes(n, "nonce")
		z, _ := c.RandomBytes(n, "nonce")
		if len(x) != n || !bytes.Equal(x, y) || bytes.Equal(x, z) {
			t.Fatalf("draw of %d bytes: same seed must agree, another seed must not", n)
		}
	}
	x, _ := a.RandomBytes(32, "nonce")
	y, _ := a.RandomBytes(32, "nonce")
	if bytes.Equal(x, y) {
		t.Fatal("successive draws repeat")
	}
}

func TestPinnedReportsTheTrustedIdentity(t *testing.T) {
	var s IdentityStore
	if _, _, ok := s.Pinned("bob:phone"); ok {
		t.Fatal("nothing pinned yet")
	}
	_ = s.Check("bob:phone", []byte{1}, []byte{2}, false)
	if err := s.Check("bob:phone", []byte{3}, []byte{4}, false); err == nil {
		t.Fatal("a changed identity is refused without acceptChange")
	}
	_ = s.Check("bob:phone", []byte{3}, []byte{4}, true)
	ik, sik, ok := s.Pinned("bob:phone")
	if !ok || !bytes.Equal(ik, []byte{3}) || !bytes.Equal(sik, []byte{4}) {
		t.Fatalf("pinned %x %x %v", ik, sik, ok)
	}
}
