package live

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"semafore.local/goadapter/protocol"
	"semafore.local/goadapter/relay"
)

// SeenMessageIDs bounds how many received message ids a device remembers to drop duplicates.
const SeenMessageIDs = 20000

// Device is one installed device: keys, pinned identities, one session record per remote
// device, what it believes each user's devices are, and its relay connection.
type Device struct {
	host             *Host
	UserID, DeviceID string
	seed             string
	opkCount         int
	generation       int // installs so far minus one (reinstall draws new keys)
	spkSerial        int // SPK rotations so far (names the next one)

	keys           *protocol.Device
	rng            protocol.Entropy
	identities     protocol.IdentityStore
	sessions       map[string]*protocol.SessionRecord // by remote address
	directory      map[string]map[string]int64        // user -> device id -> registration id
	seen           map[string]bool                    // "user/message_id" received
	seenOrder      []string
	RegistrationID int64

	relay              *relay.Client
	push               *push
	org, otp, relayURL string
	totp               string // an admin's TOTP code for the next login (used once)
	// opened are the delivery ids this device opened (bounded like seen), by where it got
	// them (fromPush, fromQueue): the relay pushes an envelope and also lists it until it is
	// acknowledged, so Receive opens each such pair once (live/receive.go unopened).
	opened      map[string]byte
	openedOrder []string
	stats       Stats
}

// Stats are the counters live.stats reports, named as the simulator's mechanism statistics
// (the reference client's counters, semafore/client/client.py): the harness sums them with
// its reference devices' so a bound (at_most) covers every device.
type Stats struct {
	DuplicatesDropped   int `json:"duplicates_dropped"`
	Undecryptable       int `json:"undecryptable"`
	SkippedKeysUsed     int `json:"skipped_keys_used"`
	ResetsSent          int `json:"resets_sent"`
	IdentityChangesSeen int `json:"identity_changes_seen"`
	DeviceSetRetries    int `json:"device_set_retries"`
	Reconnects          int `json:"reconnects"`
	// Push: the device keeps a push socket (open or reconnecting), so what reaches it
	// between fetches is what was pushed; PushOpen: the socket is open now.
	Push     bool `json:"push"`
	PushOpen bool `json:"push_open"`
}

// Stats reports the device's counters (reconnects include those of its earlier sockets).
func (d *Device) Stats() Stats {
	s := d.stats
	if d.push != nil {
		r, open := d.push.counts()
		s.Reconnects += r
		s.Push, s.PushOpen = true, open
	}
	return s
}

// disconnect ends the push socket and the relay client (reinstall, clone, close).
func (d *Device) disconnect() {
	if d.push != nil {
		r, _ := d.push.counts()
		d.push.close()
		d.stats.Reconnects += r
		d.push = nil
	}
	if d.relay != nil {
		d.relay.Close()
		d.relay = nil
	}
}

// Address is the device's "user:device".
func (d *Device) Address() string { return Address(d.UserID, d.DeviceID) }

// install draws fresh keys and forgets everything the previous install knew.
func (d *Device) install() error {
	if d.seed == "" {
		d.rng = protocol.SystemEntropy{}
	} else {
		d.rng = protocol.NewSeededEntropy(fmt.Sprintf("%s:%s:%s:%d", d.seed, d.UserID, d.DeviceID, d.generation))
	}
	keys, err := protocol.GenerateDevice(d.UserID, d.DeviceID, d.opkCount, d.rng)
	if err != nil {
		return err
	}
	d.keys = keys
	d.identities = protocol.IdentityStore{}
	d.sessions = map[string]*protocol.SessionRecord{}
	d.directory = map[string]map[string]int64{}
	d.seen = map[string]bool{}
	d.seenOrder = nil
	d.opened = map[string]byte{}
	d.openedOrder = nil
	d.RegistrationID = 0
	return nil
}

// PublicBundle is the install's identity, current SPK and OPK count (hex).
func (d *Device) PublicBundle() Bundle {
	spk := d.keys.SPKs[0]
	return Bundle{
		IK:       hex.EncodeToString(d.keys.Keys.IK.Public),
		SIK:      hex.EncodeToString(d.keys.Keys.SIKPub),
		SPK:      SPKPublic{KeyID: string(spk.KeyID), Pub: hex.EncodeToString(spk.Pair.Public), Sig: hex.EncodeToString(d.keys.SPKSig)},
		OPKCount: len(d.keys.OPKs),
	}
}

// Register logs in at the relay with a one-time password (the relay assigns the
// registration id) and publishes identity, SPK and OPKs. totp is an admin's TOTP code
// ("" for a member).
func (d *Device) Register(relayURL, org, otp, totp string) (int64, error) {
	if !strings.HasPrefix(relayURL, "http://") && !strings.HasPrefix(relayURL, "https://") {
		return 0, protocol.Malformed("args.relay", "relay must be an http(s) base URL")
	}
	if d.relay != nil {
		return 0, protocol.Malformed("args.device", "%q is already registered", d.Address())
	}
	client, err := relay.New(relayURL, d.host.HTTP)
	if err != nil {
		return 0, protocol.Malformed("args.relay", "%v", err)
	}
	d.relayURL, d.org, d.otp, d.totp = relayURL, org, otp, totp
	ctx, cancel := opContext()
	defer cancel()
	if err := d.login(ctx, client); err != nil {
		return 0, relayError(err)
	}
	return d.RegistrationID, nil
}

func (d *Device) login(ctx context.Context, client *relay.Client) error {
	pair, err := client.Login(ctx, relay.LoginRequest{OrgID: d.org, UserID: d.UserID, DeviceID: d.DeviceID, OTP: d.otp, TOTP: d.totp})
	d.totp = "" // a TOTP step is accepted once (ADR-0161)
	if err != nil {
		return err
	}
	d.relay = client
	d.RegistrationID = pair.RegistrationID
	upload := relay.KeyUpload{
		IK:  d.keys.Keys.IK.Public,
		SIK: d.keys.Keys.SIKPub,
		SPK: relay.SignedPrekey{KeyID: string(d.keys.SPKs[0].KeyID), Pub: d.keys.SPKs[0].Pair.Public, Sig: d.keys.SPKSig},
	}
	for _, o := range d.keys.OPKs[:min(len(d.keys.OPKs), MaxOPKCount)] {
		upload.OPKs = append(upload.OPKs, relay.OPK{KeyID: string(o.KeyID), Pub: o.Pair.Public})
	}
	if _, err = client.PublishKeys(ctx, upload); err != nil {
		return err
	}
	d.push = startPush(client)
	return nil
}

func (d *Device) connected() (*relay.Client, error) {
	if d.relay == nil {
		return nil, &protocol.Error{Name: protocol.ErrNoSession, Field: "args.device", Detail: fmt.Sprintf("device %q is not registered", d.Address())}
	}
	return d.relay, nil
}

// Reinstall wipes the device and installs it again under the same address: it unregisters
// at the relay (DELETE /v1/devices/{id}), draws a new identity, logs in again and publishes
// the new keys. Peers learn it from 410 stale_devices on their next send.
func (d *Device) Reinstall() error {
	client, err := d.connected()
	if err != nil {
		return err
	}
	ctx, cancel := opContext()
	defer cancel()
	// A device the relay already forgot is what we want anyway; the login below fails
	// loudly if the relay is unreachable.
	_ = client.RemoveDevice(ctx, d.DeviceID)
	d.disconnect()
	d.generation++
	if err := d.install(); err != nil {
		return err
	}
	fresh, err := relay.New(d.relayURL, d.host.HTTP)
	if err != nil {
		return protocol.Malformed("args.relay", "%v", err)
	}
	return relayError(d.login(ctx, fresh))
}

// Digest is the SPEC §7 digest of the current session with remote (NoSession if none).
func (d *Device) Digest(remote string) ([]byte, error) {
	r := d.sessions[remote]
	if r == nil || r.Current == nil {
		return nil, &protocol.Error{Name: protocol.ErrNoSession, Field: "args.remote", Detail: fmt.Sprintf("no session with %q", remote)}
	}
	return r.Current.Ratchet.Digest(), nil
}

func (d *Device) record(address string) *protocol.SessionRecord {
	r := d.sessions[address]
	if r == nil {
		r = &protocol.SessionRecord{}
		d.sessions[address] = r
	}
	return r
}

func (d *Device) hasSession(address string) bool {
	r := d.sessions[address]
	return r != nil && r.Current != nil
}

// forget archives the session with a removed or reinstalled device.
func (d *Device) forget(address string) {
	if r := d.sessions[address]; r != nil {
		r.ArchiveCurrent()
	}
}

// firstTimeSeen remembers key and reports whether it is new (duplicates are dropped).
func (d *Device) firstTimeSeen(key string) bool {
	if d.seen[key] {
		return false
	}
	d.seen[key] = true
	d.seenOrder = append(d.seenOrder, key)
	if len(d.seenOrder) > SeenMessageIDs {
		delete(d.seen, d.seenOrder[0])
		d.seenOrder = d.seenOrder[1:]
	}
	return true
}

// trust pins (or, on a change, re-pins: the gate's users accept a new identity after a
// reinstall, as Signal does with a "safety number changed" notice) a remote identity.
func (d *Device) trust(address string, ik, sik []byte) {
	if old, oldSIK, ok := d.identities.Pinned(address); ok && (!equal(old, ik) || !equal(oldSIK, sik)) {
		d.stats.IdentityChangesSeen++ // what the user is shown ("safety number changed")
	}
	// acceptChange=true never fails
	_ = d.identities.Check(address, ik, sik, true)
}

// Where a device got an envelope it opened.
const (
	fromQueue byte = 'q' // GET /v1/messages
	fromPush  byte = 'p' // the push socket
)

// markOpened remembers where a delivery id was opened.
func (d *Device) markOpened(deliveryID string, from byte) {
	if _, ok := d.opened[deliveryID]; !ok {
		d.openedOrder = append(d.openedOrder, deliveryID)
	}
	d.opened[deliveryID] = from
	if len(d.openedOrder) > SeenMessageIDs {
		delete(d.opened, d.openedOrder[0])
		d.openedOrder = d.openedOrder[1:]
	}
}

// adopt takes a fetched bundle: the SPK signature must verify; a device already in session
// under the same identity keeps its session, any other gets a new one (X3DH, SMX1 until the
// reply). The directory records the device's registration id.
func (d *Device) adopt(b relay.DeviceBundle) error {
	address := Address(b.UserID, b.DeviceID)
	if ik, sik, ok := d.identities.Pinned(address); !ok || !equal(ik, b.IK) || !equal(sik, b.SIK) || !d.hasSession(address) {
		bundle := protocol.Bundle{
			UserID: b.UserID, DeviceID: b.DeviceID, IK: b.IK, SIK: b.SIK,
			SPK: protocol.SignedPrekey{KeyID: []byte(b.SPK.KeyID), Pub: b.SPK.Pub, Sig: b.SPK.Sig},
		}
		if b.OPK != nil {
			bundle.OPK = &protocol.PrekeyRef{KeyID: []byte(b.OPK.KeyID), Pub: b.OPK.Pub}
		}
		s, err := protocol.StartSession(d.keys.Keys, d.Address(), bundle, d.rng)
		if err != nil {
			return err
		}
		d.trust(address, b.IK, b.SIK)
		d.record(address).Install(s)
	}
	devices := d.directory[b.UserID]
	if devices == nil {
		devices = map[string]int64{}
		d.directory[b.UserID] = devices
	}
	devices[b.DeviceID] = b.RegistrationID
	return nil
}

func equal(a, b []byte) bool { return string(a) == string(b) }
