package live

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"semafore.local/goadapter/protocol"
)

type convo struct {
	t    *testing.T
	host *Host
	url  string
	seq  int
}

func newConvo(t *testing.T) (*convo, *fakeRelay) {
	f, url := newFakeRelay(t)
	return &convo{t: t, host: NewHost(), url: url}, f
}

func (c *convo) device(user, device string) *Device {
	c.t.Helper()
	d, err := c.host.Create(user, device, "test-seed", 5)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := d.Register(c.url, "org", "000000", ""); err != nil {
		c.t.Fatal(err)
	}
	return d
}

// send returns the message id, the plaintext and the envelopes to the recipient's devices.
func (c *convo) send(from *Device, to string, deliver bool) (string, []byte, []SentEnvelope) {
	c.t.Helper()
	c.seq++
	id, text := fmt.Sprintf("m%d", c.seq), []byte(fmt.Sprintf("canary-%d from %s", c.seq, from.Address()))
	sent, err := from.Send(to, text, id, deliver)
	if err != nil {
		c.t.Fatalf("%s sends %s: %v", from.Address(), id, err)
	}
	return id, text, sent
}

func (c *convo) expect(d *Device, reverse bool, from *Device, syncTo string, ids ...string) {
	c.t.Helper()
	got, err := d.Receive(reverse, true)
	if err != nil {
		c.t.Fatalf("%s receives: %v", d.Address(), err)
	}
	if len(got) != len(ids) {
		c.t.Fatalf("%s received %+v, want %v", d.Address(), got, ids)
	}
	for i, item := range got {
		want := ids[i]
		if reverse {
			want = ids[len(ids)-1-i]
		}
		if item.Error != "" || item.MessageID != want || item.From != from.Address() || item.SyncTo != syncTo {
			c.t.Fatalf("%s: entry %d is %+v, want %s from %s (sync %q)", d.Address(), i, item, want, from.Address(), syncTo)
		}
	}
}

func magic(e []SentEnvelope, to string) string {
	for _, env := range e {
		if env.To == to {
			return string(env.Body[:4])
		}
	}
	return "none"
}

func digestsAgree(t *testing.T, a, b *Device) {
	t.Helper()
	da, err := a.Digest(b.Address())
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.Digest(a.Address())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(da, db) {
		t.Fatalf("digests differ: %x vs %x", da, db)
	}
}

func TestAConversationThroughTheRelayFollowsSPEC(t *testing.T) {
	c, relay := newConvo(t)
	alice, bob := c.device("alice", "phone"), c.device("bob", "phone")

	m1, _, env := c.send(alice, "bob", true)
	if magic(env, "bob:phone") != "SMX1" {
		t.Fatal("the first message bootstraps in an SMX1")
	}
	c.expect(bob, false, alice, "", m1)
	m2, _, env := c.send(bob, "alice", true)
	if magic(env, "alice:phone") != "DRV1" {
		t.Fatal("the responder answers with a bare DR_V1")
	}
	c.expect(alice, false, bob, "", m2)
	digestsAgree(t, alice, bob)
	m3, _, env := c.send(alice, "bob", true)
	if magic(env, "bob:phone") != "DRV1" {
		t.Fatal("after the first reply the initiator stops wrapping in SMX1")
	}
	c.expect(bob, false, alice, "", m3)

	var burst []string
	for range 3 {
		id, _, _ := c.send(alice, "bob", true)
		burst = append(burst, id)
	}
	c.expect(bob, true, alice, "", burst...)

	for _, body := range relay.bodies {
		if bytes.Contains(body, []byte("canary-")) {
			t.Fatal("plaintext reached the relay")
		}
	}
}

func TestALostFirstMessageIsResentInAnSMX1(t *testing.T) {
	c, _ := newConvo(t)
	erin, frank := c.device("erin", "phone"), c.device("frank", "phone")
	c.send(erin, "frank", false)
	if got, _ := frank.Receive(false, true); len(got) != 0 {
		t.Fatalf("a withheld message never reaches the relay: %+v", got)
	}
	m2, _, env := c.send(erin, "frank", true)
	if magic(env, "frank:phone") != "SMX1" {
		t.Fatal("until the first reply every message carries the X3DH header")
	}
	c.expect(frank, false, erin, "", m2)
	m3, _, _ := c.send(frank, "erin", true)
	c.expect(erin, false, frank, "", m3)
}

func TestSimultaneousInitiationConverges(t *testing.T) {
	c, _ := newConvo(t)
	carol, dave := c.device("carol", "phone"), c.device("dave", "phone")
	toDave, _, _ := c.send(carol, "dave", true)
	toCarol, _, _ := c.send(dave, "carol", true)
	c.expect(dave, false, carol, "", toDave)
	c.expect(carol, false, dave, "", toCarol)
	for i, pair := range [][2]*Device{{carol, dave}, {dave, carol}, {carol, dave}} {
		id, _, _ := c.send(pair[0], pair[1].UserID, true)
		c.expect(pair[1], false, pair[0], "", id)
		if i == 1 {
			digestsAgree(t, carol, dave)
		}
	}
}

func TestFanOutSyncCopiesAndReinstall(t *testing.T) {
	c, relay := newConvo(t)
	alice, bob := c.device("alice", "phone"), c.device("bob", "phone")
	m1, _, _ := c.send(alice, "bob", true)
	c.expect(bob, false, alice, "", m1)

	alice2, bob2 := c.device("alice", "laptop"), c.device("bob", "laptop")
	m, _, env := c.send(alice, "bob", true)
	if len(env) != 3 || magic(env, "bob:laptop") != "SMX1" {
		t.Fatalf("a new device of the peer is learned from 409 and bootstrapped: %+v", env)
	}
	for _, e := range env {
		if e.Sync != (e.To == "alice:laptop") {
			t.Fatalf("Send lists the sync copy to the own laptop, marked, after the peer's: %+v", e)
		}
	}
	if env[2].To != "alice:laptop" || magic(env, "alice:laptop") != "SMX1" {
		t.Fatalf("the sync copy comes last and bootstraps the own laptop's session: %+v", env[2])
	}
	if !strings.Contains(strings.Join(relay.rejected, ","), "mismatched_devices") {
		t.Fatal("the relay should have refused the stale device set once")
	}
	c.expect(bob, false, alice, "", m)
	c.expect(bob2, false, alice, "", m)
	c.expect(alice2, false, alice, "bob", m)
	r, _, _ := c.send(bob2, "alice", true)
	c.expect(alice, false, bob2, "", r)
	c.expect(alice2, false, bob2, "", r)
	c.expect(bob, false, bob2, "alice", r)

	oldIK := bob.PublicBundle().IK
	if err := bob.Reinstall(); err != nil {
		t.Fatal(err)
	}
	if bob.PublicBundle().IK == oldIK {
		t.Fatal("a reinstall draws a new identity")
	}
	m, _, env = c.send(alice, "bob", true)
	if magic(env, "bob:phone") != "SMX1" || relay.rejected[len(relay.rejected)-1] != "stale_devices" {
		t.Fatalf("the reinstalled device is learned from 410 and bootstrapped anew (%v)", relay.rejected)
	}
	c.expect(bob, false, alice, "", m)
	c.expect(bob2, false, alice, "", m)
	back, _, _ := c.send(bob, "alice", true)
	c.expect(alice, false, bob, "", back)
	c.expect(bob2, false, bob, "alice", back) // the laptop re-pins its own user's new phone
}

func TestDuplicatesAreDropped(t *testing.T) {
	c, f := newConvo(t)
	alice, bob := c.device("alice", "phone"), c.device("bob", "phone")
	m1, _, _ := c.send(alice, "bob", true)
	c.expect(bob, false, alice, "", m1)
	// a client that lost the relay's answer sends the message again: a new frame, same id
	if _, err := alice.Send("bob", []byte("again"), m1, true); err != nil {
		t.Fatal(err)
	}
	if got, err := bob.Receive(false, true); err != nil || len(got) != 0 {
		t.Fatalf("a message id already shown is dropped: %+v %v", got, err)
	}
	// the relay redelivers a frame whose key is used: reported, as the reference does
	m2, _, _ := c.send(alice, "bob", true)
	q := f.queues["bob/phone"]
	f.queues["bob/phone"] = append(q, q[0])
	got, err := bob.Receive(false, true)
	if err != nil || len(got) != 2 || got[0].MessageID != m2 || got[1].Error != protocol.ErrDuplicateMessage {
		t.Fatalf("redelivered frame: %+v %v", got, err)
	}
	if f.resets != 0 {
		t.Fatal("a duplicate frame is no reason to reset the session")
	}
}

// An undecryptable frame is reported in its entry and answered with a SPEC §4 reset notice:
// a bare SRS1 to the failing device where the relay routes them, end to end otherwise.
func TestAnUndecryptableFrameIsReportedAndResetsTheSession(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			c, f := newConvo(t)
			f.legacy = legacy
			alice, bob := c.device("alice", "phone"), c.device("bob", "phone")
			c.device("alice", "laptop")
			m1, _, _ := c.send(alice, "bob", true)
			c.expect(bob, false, alice, "", m1)
			m2, _, _ := c.send(bob, "alice", true)
			c.expect(alice, false, bob, "", m2)

			_, _, env := c.send(alice, "bob", true)
			tampered := append([]byte(nil), env[0].Body...)
			tampered[len(tampered)-1] ^= 1
			f.queues["bob/phone"][0].Body = tampered
			laptop := len(f.queues["alice/laptop"])
			got, err := bob.Receive(false, true)
			if err != nil || len(got) != 1 || got[0].Error != protocol.ErrDecryptionFailed {
				t.Fatalf("a tampered frame is reported, not fatal: %+v %v", got, err)
			}
			if got[0].EnvelopeSHA256 != hex.EncodeToString(sha(tampered)) {
				t.Fatalf("the entry names the envelope by its SHA-256")
			}
			if routed := f.resets == 1; routed == legacy {
				t.Fatalf("raw SRS1 notices routed: %d (legacy relay %v)", f.resets, legacy)
			}
			if added := len(f.queues["alice/laptop"]) - laptop; added != map[bool]int{false: 0, true: 1}[legacy] {
				t.Fatalf("alice's laptop got %d envelopes: a routed notice goes to the failing device only, an e2e one to every device", added)
			}
			got, err = alice.Receive(false, true)
			if err != nil || len(got) != 1 || !got[0].Reset || got[0].MessageID != "" || got[0].Plaintext != "" {
				t.Fatalf("a reset notice is no message, reported with its bytes: %+v %v", got, err)
			}
			if body, _ := hex.DecodeString(got[0].Body); hex.EncodeToString(sha(body)) != got[0].EnvelopeSHA256 ||
				legacy == bytes.HasPrefix(body, protocol.ResetMagic) {
				t.Fatalf("the reset entry carries the fetched envelope (raw SRS1 unless legacy): %+v", got[0])
			}
			m4, _, env := c.send(alice, "bob", true)
			if magic(env, "bob:phone") != "SMX1" {
				t.Fatal("after an honoured reset the next message bootstraps a new session")
			}
			c.expect(bob, false, alice, "", m4)
		})
	}
}

func TestSendersArePinnedWithoutSpendingTheirPrekeys(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		c, f := newConvo(t)
		f.legacy = legacy
		alice, bob := c.device("alice", "phone"), c.device("bob", "phone")
		m1, _, _ := c.send(alice, "bob", true) // claims one of bob's OPKs
		before := f.bundleGet
		c.expect(bob, false, alice, "", m1)
		if legacy && (f.bundleGet != before+1 || f.identityGet != 0) {
			t.Fatal("a relay without the identity lookup is asked for the bundle")
		}
		if !legacy && (f.bundleGet != before || f.identityGet != 1 || len(f.keys["alice/phone"].OPKs) != 5) {
			t.Fatalf("bob pinned alice with %d bundle and %d identity fetches; alice has %d OPKs left",
				f.bundleGet-before, f.identityGet, len(f.keys["alice/phone"].OPKs))
		}
	}
}

func TestOperationErrorsNameTheirField(t *testing.T) {
	c, _ := newConvo(t)
	alice := c.device("alice", "phone")
	cases := []struct {
		err   error
		name  string
		field string
	}{
		{second(c.host.Create("alice", "phone", "", 5)), protocol.ErrMalformedEnvelope, "args.device_id"},
		{second(c.host.Create("alice", "tablet", "", 0)), protocol.ErrMalformedEnvelope, "args.opk_count"},
		{second(c.host.Device("carol:phone")), protocol.ErrNoSession, "args.device"},
		{second(alice.Digest("bob:phone")), protocol.ErrNoSession, "args.remote"},
		{second(alice.Register(c.url, "org", "000000", "")), protocol.ErrMalformedEnvelope, "args.device"},
		{second(alice.Send("nobody", []byte("x"), "m", true)), ErrRelay, "args.to"},
		{second(alice.Send("alice", []byte("x"), "m", true)), ErrRelay, "args.to"}, // no other own device
	}
	lonely, _ := c.host.Create("lonely", "phone", "", 1)
	cases = append(cases, struct {
		err   error
		name  string
		field string
	}{second(lonely.Receive(false, true)), protocol.ErrNoSession, "args.device"})
	for i, tc := range cases {
		var pe *protocol.Error
		if !errors.As(tc.err, &pe) || pe.Name != tc.name || pe.Field != tc.field {
			t.Errorf("case %d: %v, want %s on %s", i, tc.err, tc.name, tc.field)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func sha(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// A message to several users is one message (issue #11): every device of each peer gets an
// envelope, the sender's other device one sync copy naming every peer ("bob,carol"), the
// recipients listed first (sorted), then the sync copy; an unknown peer does not stop the
// others and is reported in failed.
func TestAMessageToSeveralUsersIsOneMessageWithOneSyncCopy(t *testing.T) {
	c, _ := newConvo(t)
	alice, laptop := c.device("alice", "phone"), c.device("alice", "laptop")
	bob, carol := c.device("bob", "phone"), c.device("carol", "phone")
	sent, failed, err := alice.SendToUsers([]string{"carol", "bob", "alice", "nobody"}, []byte("hi all"), "g1", true)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, e := range sent {
		order = append(order, fmt.Sprintf("%s sync=%v", e.To, e.Sync))
	}
	if want := "bob:phone sync=false,carol:phone sync=false,alice:laptop sync=true"; strings.Join(order, ",") != want {
		t.Fatalf("envelopes %v, want %s", order, want)
	}
	if len(failed) != 1 || failed["nobody"] == nil {
		t.Fatalf("the unknown user is reported, the others reached: %v", failed)
	}
	c.expect(bob, false, alice, "", "g1")
	c.expect(carol, false, alice, "", "g1")
	c.expect(laptop, false, alice, "bob,carol,nobody", "g1")
}

// An attachment is encrypted before it leaves the device (the relay holds ciphertext only),
// and the receiver fetches it, checks the blob's SHA-256 before decrypting and reports the
// plaintext; a blob the relay altered is reported as an attachment error, never as data.
func TestAnAttachmentTravelsEncryptedAndIsCheckedBeforeOpening(t *testing.T) {
	c, f := newConvo(t)
	alice, bob := c.device("alice", "phone"), c.device("bob", "phone")
	data := []byte("the quarterly numbers")
	if _, _, att, err := alice.Attach([]string{"bob"}, data, []byte("see attached"), "a1"); err != nil || att.FileID == "" || len(att.Key) != 32 {
		t.Fatalf("attach: %+v %v", att, err)
	}
	if blob := f.blobs["file-1"]; bytes.Contains(blob, data) || len(blob) != 12+len(data)+16 {
		t.Fatalf("the relay holds %d bytes containing the plaintext: %v", len(blob), bytes.Contains(blob, data))
	}
	got, err := bob.Receive(false, true)
	if err != nil || len(got) != 1 || got[0].Kind != "attachment" || got[0].Attachment != hex.EncodeToString(data) {
		t.Fatalf("bob received %+v %v", got, err)
	}
	if _, _, _, err := alice.Attach([]string{"bob"}, data, nil, "a2"); err != nil {
		t.Fatal(err)
	}
	f.blobs["file-2"][20] ^= 1
	got, err = bob.Receive(false, true)
	if err != nil || len(got) != 1 || got[0].Attachment != "" || !strings.Contains(got[0].AttachmentError, "sha256") {
		t.Fatalf("a tampered blob: %+v %v", got, err)
	}
}

// A read receipt is a message of its own (kind "receipt", empty body, "rcpt"), listed by
// the receiver with what it acknowledges and no plaintext.
func TestAReadReceiptListsTheMessagesItAcknowledges(t *testing.T) {
	c, _ := newConvo(t)
	alice, bob := c.device("alice", "phone"), c.device("bob", "phone")
	m1, _, _ := c.send(alice, "bob", true)
	c.expect(bob, false, alice, "", m1)
	if _, err := bob.SendReceipt("alice", []string{m1}, "r1"); err != nil {
		t.Fatal(err)
	}
	got, err := alice.Receive(false, true)
	if err != nil || len(got) != 1 || got[0].Kind != "receipt" || got[0].MessageID != "r1" ||
		len(got[0].Rcpt) != 1 || got[0].Rcpt[0] != m1 || got[0].Plaintext != "" {
		t.Fatalf("alice received %+v %v", got, err)
	}
}

// A thief holding an exported state (live.state.attack) reads the device's own next frames
// from its sending chain as stolen and the peer's frames until the device's next DH step,
// then nothing more: the ratchet heals (SPEC §3 post-compromise security).
func TestAStolenStateOpensFramesUntilTheRatchetHeals(t *testing.T) {
	c, _ := newConvo(t)
	alice, bob := c.device("alice", "phone"), c.device("bob", "phone")
	var captured []Captured
	var labels []string
	say := func(from, to *Device, label string) {
		t.Helper()
		sent, err := from.Send(to.UserID, []byte(label), label, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range sent {
			captured = append(captured, Captured{Sender: from.Address(), Recipient: e.To, Body: e.Body})
			labels = append(labels, label)
		}
		if _, err := to.Receive(false, true); err != nil {
			t.Fatal(err)
		}
	}
	say(alice, bob, "m1")
	say(bob, alice, "r1")
	state := c.host.ExportState(bob)
	captured, labels = nil, nil
	say(bob, alice, "r1b") // bob's sending chain as stolen
	say(alice, bob, "m2")  // alice's next chain: the thief follows with bob's ratchet key
	say(bob, alice, "r2")  // bob's DH step: a ratchet key the thief never saw
	say(alice, bob, "m3")  // to bob's new ratchet key: healed
	opened, err := c.host.Attack(state, nil, captured)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for i, pt := range opened {
		got[labels[i]] = pt != nil && bytes.Contains(pt, []byte(labels[i]))
	}
	if !got["r1b"] || !got["m2"] || got["r2"] || got["m3"] {
		t.Fatalf("the thief opened %v; want r1b and m2 only", got)
	}
	if _, err := c.host.Attack("00", nil, captured); err == nil {
		t.Fatal("a state this process never exported is refused")
	}
}
